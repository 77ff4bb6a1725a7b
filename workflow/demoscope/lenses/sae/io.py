"""An SAE on disk: `save_sae` writes and `load_sae` reads demoscope's TopK SAE folder.

An SAE is saved as a directory in the format `load_sae` reads:

    sae.safetensors   W_dec (d_sae, d_in), b_dec (d_in), b_enc (d_sae), W_enc (d_sae, d_in)
                      unless tied, optionally mean (d_in): the raw training mean, the baseline of
                      the normalised MSE (b_dec / scale when absent)
    sae.json          {"format": "demoscope.topk_sae", "d_in", "d_sae", "k", "tied", "scale",
                       "shapes": {tensor: shape}, "metrics": {...}, ...}

docs/sae.md describes the format for users who bring published weights.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

from demoscope.lenses.sae.model import TopKSAE

FORMAT = "demoscope.topk_sae"
WEIGHTS, INFO = "sae.safetensors", "sae.json"


class SAEFormatError(ValueError):
    """A directory that does not hold an SAE in demoscope's format; the message says what is wrong."""


def save_sae(sae: TopKSAE, directory: str | Path, **info) -> None:
    """Write `sae.safetensors` and `sae.json` (with `info`, e.g. metrics) into `directory`."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    tensors = {"W_dec": sae.W_dec, "b_dec": sae.b_dec, "b_enc": sae.b_enc, "mean": sae.mean}
    if not sae.tied:
        tensors["W_enc"] = sae.W_enc
    tensors = {name: t.detach().float().cpu().contiguous() for name, t in tensors.items()}
    save_file(tensors, directory / WEIGHTS)
    meta = {
        "format": FORMAT,
        "d_in": sae.d_in,
        "d_sae": sae.d_sae,
        "k": sae.k,
        "tied": sae.tied,
        "scale": float(sae.scale),
        "shapes": {name: list(t.shape) for name, t in sorted(tensors.items())},
        **info,
    }
    (directory / INFO).write_text(json.dumps(meta, indent=1, sort_keys=True) + "\n")


def load_sae(directory: str | Path, device: str = "cpu") -> TopKSAE:
    """An SAE saved by `save_sae`, or published weights laid out the same way (docs/sae.md).

    `W_enc` may also be stored as (d_in, d_sae), the orientation of several published SAE
    libraries; it is transposed. The JSON is kept as `sae.info`."""
    directory = Path(directory)
    info_path, weights_path = directory / INFO, directory / WEIGHTS
    for path in (info_path, weights_path):
        if not path.exists():
            raise SAEFormatError(f"{directory}: no {path.name}; an SAE directory holds {WEIGHTS} and {INFO}")
    info = json.loads(info_path.read_text())
    missing = [key for key in ("d_in", "d_sae", "k") if key not in info]
    if missing:
        raise SAEFormatError(f"{info_path}: lacks {', '.join(missing)}")
    d_in, d_sae, k, tied = int(info["d_in"]), int(info["d_sae"]), int(info["k"]), bool(info.get("tied", False))
    tensors = load_file(weights_path)
    expected = {"W_dec": (d_sae, d_in), "b_dec": (d_in,), "b_enc": (d_sae,), "mean": (d_in,)}
    if not tied:
        expected["W_enc"] = (d_sae, d_in)
        if "W_enc" in tensors and tuple(tensors["W_enc"].shape) == (d_in, d_sae) and d_in != d_sae:
            tensors["W_enc"] = tensors["W_enc"].T
    for name, shape in expected.items():
        if name == "mean" and name not in tensors:
            continue
        if name not in tensors:
            raise SAEFormatError(f"{weights_path}: lacks tensor {name} {list(shape)}")
        if tuple(tensors[name].shape) != shape:
            raise SAEFormatError(
                f"{weights_path}: {name} has shape {list(tensors[name].shape)}, but {INFO} (d_in={d_in}, "
                f"d_sae={d_sae}) needs {list(shape)}"
            )
    listed = info.get("shapes", {})
    for name, shape in listed.items():
        if name in tensors and list(tensors[name].shape) != list(shape) and name != "W_enc":
            raise SAEFormatError(f"{info_path}: says {name} is {shape}, the weights hold {list(tensors[name].shape)}")
    sae = TopKSAE(d_in, d_sae, k, tied)
    scale = float(info.get("scale", 1.0))
    with torch.no_grad():
        for name in ("W_dec", "b_dec", "b_enc") + (() if tied else ("W_enc",)):
            getattr(sae, name).copy_(tensors[name].float())
        sae.scale.fill_(scale)
        sae.mean.copy_(tensors["mean"].float() if "mean" in tensors else tensors["b_dec"].float() / scale)
    sae.info = info
    return sae.to(device).eval()
