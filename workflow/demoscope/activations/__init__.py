"""Capturing activations under a mask and storing them: capture hooks, masks, the dump, the Zarr store."""
