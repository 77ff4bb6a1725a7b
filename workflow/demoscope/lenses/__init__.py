"""Per-candidate features read from activations (moments, massive, SAE, task vector, attention) and the controls."""
