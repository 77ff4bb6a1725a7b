"""Published SAEs: SAELens and EleutherAI sparsify folders read into demoscope's SAE interface.

Two layouts are in common use, one SAE per folder:

- SAELens: `cfg.json` + `sae_weights.safetensors`. Tensors W_enc (d_in, d_sae), W_dec (d_sae,
  d_in), b_enc (d_sae), b_dec (d_in), and `threshold` (d_sae) for JumpReLU. The config names the
  `architecture` (standard = ReLU, jumprelu, topk with `k`), `apply_b_dec_to_input`,
  `normalize_activations`, and the model and hook it was trained on (top level in SAELens < 6,
  under `meta` or `metadata` from 6 on): `model_name`, `hook_name` such as
  `blocks.12.hook_resid_post`.
- sparsify: `cfg.json` + `sae.safetensors`. Tensors encoder.weight (d_sae, d_in), encoder.bias,
  W_dec (d_sae, d_in; (d_in, d_sae) is transposed), b_dec; TopK with `k`; always subtracts b_dec
  before encoding. The folder is named after its hookpoint (`layers.12`, `layers.12.mlp`); the
  run's `config.json` one level up names the `model`.

Either becomes a `PublishedSAE`, a `TopKSAE` whose `encode` applies the library's own
activation: ReLU, JumpReLU (z = pre where pre > threshold, else 0) or TopK then ReLU. Every
non-zero latent of a ReLU or JumpReLU SAE is kept, so its L0 varies by token; `encode` returns
them padded with zeros to the block's largest count, which `sae_features` reads like a TopK code.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import torch
from safetensors.torch import load_file

from demoscope.lenses.sae.io import INFO, WEIGHTS, SAEFormatError, load_sae
from demoscope.lenses.sae.model import TopKSAE

SAELENS_WEIGHTS, SPARSIFY_WEIGHTS, CONFIG = "sae_weights.safetensors", "sae.safetensors", "cfg.json"
ACTIVATIONS = ("topk", "relu", "jumprelu")


class PublishedSAE(TopKSAE):
    """An SAE with pre = W_enc (x - apply_b_dec * b_dec) + b_enc and the library's activation."""

    def __init__(self, d_in: int, d_sae: int, activation: str, k: int | None = None, apply_b_dec: bool = True):
        if activation not in ACTIVATIONS:
            raise ValueError(f"activation {activation!r}; allowed: {list(ACTIVATIONS)}")
        super().__init__(d_in, d_sae, k if activation == "topk" else d_sae)
        self.activation, self.apply_b_dec = activation, apply_b_dec
        self.k = k if activation == "topk" else None
        self.register_buffer("threshold", torch.zeros(d_sae))

    def pre_acts(self, x_n: torch.Tensor) -> torch.Tensor:
        shift = self.b_dec if self.apply_b_dec else torch.zeros_like(self.b_dec)
        return (x_n - shift) @ self.W_enc.T + self.b_enc

    def encode(self, x: torch.Tensor, rows: int = 1024) -> tuple[torch.Tensor, torch.Tensor]:
        if self.activation == "topk":
            return super().encode(x)
        # A dense code is tokens x d_sae: `rows` tokens at a time keeps a block's memory small.
        parts = []
        for start in range(0, len(x), rows):
            pre = self.pre_acts(x[start : start + rows] * self.scale)
            z = torch.where(pre > torch.clamp(self.threshold, min=0.0), pre, torch.zeros_like(pre))
            width = max(1, int((z > 0).sum(dim=1).max()))
            values, indices = z.topk(width, dim=-1)
            parts.append((values, indices))
        width = max(v.shape[1] for v, _ in parts)
        pad = lambda t: torch.nn.functional.pad(t, (0, width - t.shape[1]))  # noqa: E731 zeros add nothing
        return torch.cat([pad(v) for v, _ in parts]), torch.cat([pad(i) for _, i in parts])

    def latents(self, x: torch.Tensor) -> torch.Tensor:
        # Added, not scattered: a padding entry points at latent 0 with the value 0.
        values, indices = self.encode(x)
        dense = torch.zeros(len(x), self.d_sae, dtype=values.dtype, device=values.device)
        return dense.scatter_add_(1, indices, values)


# ---------------------------------------------------------------------------------------------
# Hook names


def hook_site(hook: str) -> tuple[str, int]:
    """(demoscope site, layer) of a SAELens / TransformerLens or sparsify hook name.

    `blocks.L.hook_resid_post` and sparsify's `layers.L` are the decoder layer's output (`resid`);
    `blocks.L.hook_resid_pre` is the output of layer L-1; `blocks.L.hook_mlp_out` and
    `layers.L.mlp` are the MLP's output (`mlp_out`). Prefixes such as `model.` or `gpt_neox.`
    before `layers.` are ignored."""
    match = re.fullmatch(r"blocks\.(\d+)\.hook_(resid_post|resid_pre|mlp_out)", hook)
    if match:
        layer, name = int(match.group(1)), match.group(2)
        if name == "resid_pre":
            if layer == 0:
                raise SAEFormatError(f"hook {hook!r} reads the embeddings, which demoscope does not capture")
            return "resid", layer - 1
        return ("mlp_out" if name == "mlp_out" else "resid"), layer
    match = re.fullmatch(r"(?:.*\.)?layers\.(\d+)(\.mlp)?", hook)
    if match:
        return ("mlp_out" if match.group(2) else "resid"), int(match.group(1))
    raise SAEFormatError(
        f"hook {hook!r} is not one demoscope captures; it reads blocks.L.hook_resid_post, blocks.L.hook_resid_pre, "
        "blocks.L.hook_mlp_out (SAELens) and layers.L, layers.L.mlp (sparsify)"
    )


def layout(directory: str | Path) -> str | None:
    """'demoscope', 'saelens', 'sparsify' or None: which files the folder holds."""
    directory = Path(directory)
    if (directory / INFO).exists() and (directory / WEIGHTS).exists():
        return "demoscope"
    if (directory / CONFIG).exists() and (directory / SAELENS_WEIGHTS).exists():
        return "saelens"
    if (directory / CONFIG).exists() and (directory / SPARSIFY_WEIGHTS).exists():
        return "sparsify"
    return None


def _saelens_meta(cfg: dict) -> dict:
    meta = cfg.get("meta") or cfg.get("metadata") or {}
    return {**{k: cfg[k] for k in ("model_name", "hook_name") if k in cfg}, **meta}


def describe(directory: str | Path) -> dict:
    """The hook, site, layer and model a published folder says it was trained on (None where it
    does not say); {} for a folder in demoscope's own layout."""
    directory = Path(directory)
    kind = layout(directory)
    if kind in (None, "demoscope"):
        return {}
    cfg = json.loads((directory / CONFIG).read_text())
    if kind == "saelens":
        meta = _saelens_meta(cfg)
        hook, model = meta.get("hook_name"), meta.get("model_name")
    else:
        hook, model = cfg.get("hookpoint") or directory.name, None
        run = directory.parent / "config.json"
        if run.exists():
            model = json.loads(run.read_text()).get("model")
    site, layer = hook_site(hook) if hook else (None, None)
    return {"format": kind, "hook": hook, "site": site, "layer": layer, "model": model}


def locate(folder: str | Path, site: str, layer: int) -> str:
    """The SAE of (site, layer) in a folder of published SAEs: `<site>/layer_<L>` when present,
    else the one sub-folder (at any depth) whose config's hook name maps to it."""
    folder = Path(folder)
    direct = folder / site / f"layer_{layer}"
    if direct.exists() or not folder.exists():
        return str(direct)
    found = []
    for cfg in sorted(folder.rglob(CONFIG)):
        try:
            info = describe(cfg.parent)
        except SAEFormatError:
            continue
        if info and (info["site"], info["layer"]) == (site, layer):
            found.append(str(cfg.parent))
    if len(found) > 1:
        raise SAEFormatError(f"sae.pretrained: {folder} holds several SAEs of {site} at layer {layer}: {found}")
    if not found:
        raise SAEFormatError(
            f"sae.pretrained: {folder} holds no SAE of {site} at layer {layer} (no {site}/layer_{layer}/, and no "
            f"{CONFIG} whose hook maps there)"
        )
    return found[0]


def model_matches(trained_on: str, source: str) -> bool:
    """Whether an SAE's model name and a config's model source name the same model: the last
    path component, compared without case (`gemma-2-2b` and `google/gemma-2-2b`)."""
    last = lambda name: str(name).rstrip("/").split("/")[-1].lower().removesuffix(".gguf")  # noqa: E731
    # `embedded` is SmolLM2-135M-Instruct (models.py).
    source = "SmolLM2-135M-Instruct" if source == "embedded" else source
    return last(trained_on) == last(source)


# ---------------------------------------------------------------------------------------------
# Loading


def _tensor(tensors: dict, name: str, shape: tuple, path: Path, transposable: bool = False) -> torch.Tensor:
    if name not in tensors:
        raise SAEFormatError(f"{path}: lacks tensor {name} {list(shape)}")
    tensor = tensors[name]
    if transposable and tuple(tensor.shape) == shape[::-1] and shape[0] != shape[1]:
        tensor = tensor.T
    if tuple(tensor.shape) != shape:
        raise SAEFormatError(f"{path}: {name} has shape {list(tensor.shape)}, but {path.parent / CONFIG} needs {list(shape)}")
    return tensor.float()


def _build(d_in, d_sae, activation, k, apply_b_dec, w_enc, b_enc, w_dec, b_dec, threshold, info) -> PublishedSAE:
    sae = PublishedSAE(d_in, d_sae, activation, k, apply_b_dec)
    with torch.no_grad():
        sae.W_enc.copy_(w_enc)
        sae.b_enc.copy_(b_enc)
        sae.W_dec.copy_(w_dec)
        sae.b_dec.copy_(b_dec)
        sae.mean.copy_(b_dec)  # no training mean is published: b_dec is the baseline of sae_nmse
        if threshold is not None:
            sae.threshold.copy_(threshold)
    sae.info = info
    return sae.eval()


def load_saelens(directory: str | Path) -> PublishedSAE:
    directory = Path(directory)
    cfg_path, weights = directory / CONFIG, directory / SAELENS_WEIGHTS
    cfg = json.loads(cfg_path.read_text())
    missing = [key for key in ("d_in", "d_sae") if key not in cfg]
    if missing:
        raise SAEFormatError(f"{cfg_path}: lacks {', '.join(missing)}")
    d_in, d_sae = int(cfg["d_in"]), int(cfg["d_sae"])
    architecture = cfg.get("architecture", "standard")
    fn = cfg.get("activation_fn_str") or cfg.get("activation_fn") or "relu"
    if architecture == "standard" and fn == "topk":  # SAELens < 6 wrote TopK as a standard SAE
        architecture = "topk"
    activation = {"standard": "relu", "jumprelu": "jumprelu", "topk": "topk"}.get(architecture)
    if activation is None:
        raise SAEFormatError(f"{cfg_path}: architecture {architecture!r}; demoscope reads standard, jumprelu and topk")
    if activation == "relu" and fn not in ("relu", None):
        raise SAEFormatError(f"{cfg_path}: activation function {fn!r}; a standard SAE is read with ReLU only")
    k = cfg.get("k", (cfg.get("activation_fn_kwargs") or {}).get("k"))
    if activation == "topk" and not k:
        raise SAEFormatError(f"{cfg_path}: a topk SAE needs k")
    norm = cfg.get("normalize_activations", "none") or "none"
    if norm != "none":
        raise SAEFormatError(
            f"{cfg_path}: normalize_activations={norm!r}; fold the scaling into the weights first (SAELens "
            "fold_activation_norm_scaling_factor), demoscope reads 'none' only"
        )
    if cfg.get("reshape_activations", "none") not in ("none", None) or cfg.get("hook_head_index") is not None:
        raise SAEFormatError(f"{cfg_path}: per-head (hook_z) SAEs are not read")
    tensors = load_file(weights)
    threshold = _tensor(tensors, "threshold", (d_sae,), weights) if activation == "jumprelu" else None
    meta = _saelens_meta(cfg)
    info = {"format": "saelens", "architecture": architecture, "model": meta.get("model_name"),
            "hook": meta.get("hook_name"), "source": str(directory)}
    return _build(
        d_in, d_sae, activation, int(k) if k else None, bool(cfg.get("apply_b_dec_to_input", True)),
        _tensor(tensors, "W_enc", (d_in, d_sae), weights).T,
        _tensor(tensors, "b_enc", (d_sae,), weights),
        _tensor(tensors, "W_dec", (d_sae, d_in), weights),
        _tensor(tensors, "b_dec", (d_in,), weights),
        threshold, info,
    )


def load_sparsify(directory: str | Path) -> PublishedSAE:
    directory = Path(directory)
    cfg_path, weights = directory / CONFIG, directory / SPARSIFY_WEIGHTS
    cfg = json.loads(cfg_path.read_text())
    if "d_in" not in cfg or "k" not in cfg:
        raise SAEFormatError(f"{cfg_path}: lacks d_in or k")
    if cfg.get("activation", "topk") != "topk":
        raise SAEFormatError(f"{cfg_path}: activation {cfg['activation']!r}; demoscope reads sparsify's topk only")
    for flag in ("transcode", "skip_connection", "embed_skip", "gram_lookup"):
        if cfg.get(flag):
            raise SAEFormatError(f"{cfg_path}: {flag} is set; demoscope reads plain sparse autoencoders only")
    tensors = load_file(weights)
    d_in = int(cfg["d_in"])
    # sparsify's num_latents of 0 means d_in x expansion_factor.
    d_sae = int(cfg.get("num_latents") or 0) or d_in * int(cfg.get("expansion_factor", 32))
    info = describe(directory)
    return _build(
        d_in, d_sae, "topk", int(cfg["k"]), True,
        _tensor(tensors, "encoder.weight", (d_sae, d_in), weights),
        _tensor(tensors, "encoder.bias", (d_sae,), weights),
        _tensor(tensors, "W_dec", (d_sae, d_in), weights, transposable=True),
        _tensor(tensors, "b_dec", (d_in,), weights),
        None, {**info, "source": str(directory)},
    )


def load_any(directory: str | Path, site: str | None = None, layer: int | None = None,
             model_source: str | None = None) -> TopKSAE:
    """An SAE in any of the three layouts. With `site` and `layer`, a published SAE whose hook
    maps elsewhere stops the run; with `model_source`, so does one trained on another model."""
    directory = Path(directory)
    kind = layout(directory)
    if kind is None:
        raise SAEFormatError(
            f"{directory}: holds no SAE: demoscope's {WEIGHTS} + {INFO}, SAELens's {SAELENS_WEIGHTS} + {CONFIG}, "
            f"or sparsify's {SPARSIFY_WEIGHTS} + {CONFIG}"
        )
    if kind == "demoscope":
        return load_sae(directory)
    info = describe(directory)
    if site is not None and info["site"] is not None and (info["site"], info["layer"]) != (site, layer):
        raise SAEFormatError(
            f"{directory}: trained on hook {info['hook']!r} ({info['site']} at layer {info['layer']}), but is used "
            f"for {site} at layer {layer}"
        )
    if model_source and info.get("model") and not model_matches(info["model"], model_source):
        raise SAEFormatError(
            f"{directory}: trained on model {info['model']!r}, but the config's model source is {model_source!r}"
        )
    return load_saelens(directory) if kind == "saelens" else load_sparsify(directory)
