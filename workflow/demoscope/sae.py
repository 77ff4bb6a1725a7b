"""TopK sparse autoencoders (Gao et al. 2024, "Scaling and evaluating sparse autoencoders").

An SAE maps an activation x (d_in) to d_sae latents of which at most k are non-zero, and back:

    x_n   = scale * x                                  input normalisation
    pre   = W_enc (x_n - b_dec) + b_enc                 pre-encoder bias subtraction
    z     = ReLU(TopK_k(pre))                           the k largest, the rest 0
    x_hat = (W_dec^T z + b_dec) / scale                 rows of W_dec have unit norm

The ReLU after TopK is the one in Gao et al.'s reference code: it keeps latent values >= 0, so
"active" (z > 0, at most k per token) and "activation mass" are well defined. `scale` makes the
mean squared norm of the training tokens equal to d_in, so one learning rate suits every layer.

Training streams shuffled token blocks from an activation store (never the whole store), is
seeded, checkpoints every N steps and resumes from a checkpoint to the same bits as an
uninterrupted run (on the CPU). An SAE is saved as a directory in the format `load_sae` reads:

    sae.safetensors   W_dec (d_sae, d_in), b_dec (d_in), b_enc (d_sae), W_enc (d_sae, d_in)
                      unless tied, optionally mean (d_in): the raw training mean, the baseline of
                      the normalised MSE (b_dec / scale when absent)
    sae.json          {"format": "demoscope.topk_sae", "d_in", "d_sae", "k", "tied", "scale",
                       "shapes": {tensor: shape}, "metrics": {...}, ...}

docs/sae.md describes the format for users who bring published weights.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from safetensors.torch import load_file, save_file

FORMAT = "demoscope.topk_sae"
WEIGHTS, INFO = "sae.safetensors", "sae.json"


class SAEFormatError(ValueError):
    """A directory that does not hold an SAE in demoscope's format; the message says what is wrong."""


class TopKSAE(torch.nn.Module):
    def __init__(self, d_in: int, d_sae: int, k: int, tied: bool = False, seed: int = 0):
        super().__init__()
        if not 0 < k <= d_sae:
            raise ValueError(f"k={k} must be between 1 and the dictionary size {d_sae}")
        self.d_in, self.d_sae, self.k, self.tied = d_in, d_sae, k, tied
        generator = torch.Generator().manual_seed(seed)
        w_dec = torch.randn(d_sae, d_in, generator=generator)
        w_dec /= w_dec.norm(dim=1, keepdim=True)
        self.W_dec = torch.nn.Parameter(w_dec)
        # Gao et al. start the encoder at the decoder's transpose.
        self.W_enc = None if tied else torch.nn.Parameter(w_dec.clone())
        self.b_enc = torch.nn.Parameter(torch.zeros(d_sae))
        self.b_dec = torch.nn.Parameter(torch.zeros(d_in))
        self.register_buffer("scale", torch.tensor(1.0))
        self.register_buffer("mean", torch.zeros(d_in))

    @property
    def encoder(self) -> torch.Tensor:
        return self.W_dec if self.tied else self.W_enc

    def pre_acts(self, x_n: torch.Tensor) -> torch.Tensor:
        # W (x - b_dec) written as W x - W b_dec: b_dec's gradient is then a vector product,
        # not a second tokens x d_sae x d_in one.
        return x_n @ self.encoder.T + (self.b_enc - self.encoder @ self.b_dec)

    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Raw activations (tokens x d_in) -> the k latent values (>= 0) and their ids."""
        pre = self.pre_acts(x * self.scale)
        indices = pre.detach().topk(self.k, dim=-1).indices
        return torch.relu(pre.gather(1, indices)), indices

    def decode_normalised(self, values: torch.Tensor, indices: torch.Tensor) -> torch.Tensor:
        return SparseDecode.apply(values, indices, self.W_dec) + self.b_dec

    def decode(self, values: torch.Tensor, indices: torch.Tensor) -> torch.Tensor:
        return self.decode_normalised(values, indices) / self.scale

    def latents(self, x: torch.Tensor) -> torch.Tensor:
        """Dense latent vectors (tokens x d_sae), zero outside each token's top k."""
        values, indices = self.encode(x)
        return torch.zeros(len(x), self.d_sae, dtype=values.dtype, device=values.device).scatter_(1, indices, values)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.decode(*self.encode(x))

    @torch.no_grad()
    def normalise_decoder(self) -> None:
        self.W_dec /= self.W_dec.norm(dim=1, keepdim=True).clamp_min(1e-12)

    @torch.no_grad()
    def project_decoder_grad(self) -> None:
        """Remove the part of each decoder row's gradient along the row (Gao et al.): the step
        then changes directions, not the unit norms the renormalisation would undo."""
        if self.W_dec.grad is not None and not self.tied:
            grad, rows = self.W_dec.grad, self.W_dec
            grad -= (grad * rows).sum(dim=1, keepdim=True) * rows


class SparseDecode(torch.autograd.Function):
    """values (tokens x k) at latent ids (tokens x k) times the rows of W (d_sae x d_in).

    The forward reads only the k chosen rows per token. The backward is two dense products,
    which on a CPU beat torch's sparse backwards (embedding_bag's per-sample weights, COO)
    several-fold at these sizes."""

    @staticmethod
    def forward(ctx, values, indices, weight):
        ctx.save_for_backward(values, indices, weight)
        return F.embedding_bag(indices, weight, per_sample_weights=values, mode="sum")

    @staticmethod
    def backward(ctx, grad):
        values, indices, weight = ctx.saved_tensors
        grad_values = (grad @ weight.T).gather(1, indices) if ctx.needs_input_grad[0] else None
        grad_weight = None
        if ctx.needs_input_grad[2]:
            dense = torch.zeros(len(values), len(weight), dtype=values.dtype, device=values.device)
            # scatter_add_: a latent listed twice in a row (never by TopK, possibly by a caller) counts twice.
            grad_weight = dense.scatter_add_(1, indices, values).T @ grad
        return grad_values, None, grad_weight


# ---------------------------------------------------------------------------------------------
# Files


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


# ---------------------------------------------------------------------------------------------
# Streaming tokens from a store


def layer_index(store, layer: int) -> int:
    """Where model layer `layer` sits in a store: stores dumped for some layers only record
    them in their `layers` attribute; full stores hold every layer at its own index."""
    layers = store.attrs.get("layers")
    if layers is None:
        if not 0 <= layer < store.n_layers:
            raise ValueError(f"{store.path}: layer {layer} is outside the store's {store.n_layers} layers")
        return layer
    if layer not in layers:
        raise ValueError(f"{store.path}: holds layers {layers}, not layer {layer}")
    return layers.index(layer)


def first_tokens(offsets: np.ndarray) -> np.ndarray:
    """The position of each segment's first token. Where a segment starts its sequence (the
    causal, bidirectional and packed masks) that token is the attention sink, whose massive
    activations (Sun et al. 2024) would otherwise dominate an SAE's loss and its explained
    variance; with a BOS token this is the usual practice of leaving BOS out."""
    offsets = np.asarray(offsets, dtype=np.int64)
    return offsets[:-1][np.diff(offsets) > 0]


def kept_rows(start: int, stop: int, skip: np.ndarray | None) -> np.ndarray | slice:
    """Rows of tokens start..stop-1 that are not in the sorted positions `skip`."""
    if skip is None:
        return slice(None)
    keep = np.ones(stop - start, dtype=bool)
    keep[skip[np.searchsorted(skip, start) : np.searchsorted(skip, stop)] - start] = False
    return keep


class TokenStream:
    """Shuffled batches of the tokens first..last-1 of one store layer (less the positions in
    `skip`), read a buffer at a time.

    The token range is cut into units on the store's chunk grid. Epoch e visits the units in a
    permutation drawn from (seed, e); consecutive units fill a buffer of about `buffer_tokens`,
    whose rows are permuted with (seed, e, buffer) and cut into batches of `batch_tokens` (the
    remainder is dropped). Batch b of the whole sequence is thus a function of the seed alone,
    and `batches(start)` reaches batch `start` without reading the buffers before it."""

    def __init__(self, array, layer: int, first: int, last: int, batch_tokens: int, buffer_tokens: int, seed: int,
                 skip: np.ndarray | None = None):
        chunk = array.chunks[1]
        edges = sorted({first, last, *range((first // chunk + 1) * chunk, last, chunk)})
        self.units = list(zip(edges[:-1], edges[1:]))
        self.skip = None if skip is None else np.sort(np.asarray(skip, dtype=np.int64))
        self.sizes = [
            (stop - start) if self.skip is None else int(kept_rows(start, stop, self.skip).sum()) for start, stop in self.units
        ]
        self.tokens = sum(self.sizes)
        if self.tokens < batch_tokens:
            raise ValueError(f"{self.tokens} training tokens are fewer than one batch of {batch_tokens}")
        self.array, self.layer, self.seed = array, layer, seed
        self.batch_tokens, self.buffer_tokens = batch_tokens, max(buffer_tokens, batch_tokens)

    def buffers(self, epoch: int) -> list[list[int]]:
        """The units of each buffer of one epoch."""
        order = np.random.default_rng([self.seed, epoch]).permutation(len(self.units))
        out, current, size = [], [], 0
        for unit in order:
            current.append(int(unit))
            size += self.sizes[unit]
            if size >= self.buffer_tokens:
                out.append(current)
                current, size = [], 0
        if current:
            out.append(current)
        return out

    def read(self, unit: int) -> np.ndarray:
        start, stop = self.units[unit]
        return self.array[self.layer, start:stop, :][kept_rows(start, stop, self.skip)]

    def batches(self, start: int = 0):
        """Yield (step, tokens x d_in float32 array) from step `start` on, forever."""
        step, epoch = 0, 0
        while True:
            for index, units in enumerate(self.buffers(epoch)):
                n_batches = sum(self.sizes[unit] for unit in units) // self.batch_tokens
                if step + n_batches <= start:
                    step += n_batches
                    continue
                rows = np.concatenate([self.read(unit) for unit in units])
                rows = rows[np.random.default_rng([self.seed, epoch, index]).permutation(len(rows))]
                for b in range(n_batches):
                    if step >= start:
                        yield step, rows[b * self.batch_tokens : (b + 1) * self.batch_tokens].astype(np.float32)
                    step += 1
            epoch += 1


def token_blocks(array, layer: int, first: int, last: int, block_tokens: int, skip: np.ndarray | None = None):
    """Tokens first..last-1 of one store layer (less the positions in `skip`), in order, at
    most block_tokens at a time."""
    for start in range(first, last, block_tokens):
        stop = min(start + block_tokens, last)
        yield array[layer, start:stop, :][kept_rows(start, stop, skip)].astype(np.float32)


def moments(array, layer: int, first: int, last: int, skip=None, block_tokens: int = 8192) -> tuple[np.ndarray, float]:
    """Mean vector and mean squared norm of tokens first..last-1, streamed."""
    total, square, n = 0.0, 0.0, 0
    for block in token_blocks(array, layer, first, last, block_tokens, skip):
        block = block.astype(np.float64)
        total = total + block.sum(axis=0)
        square += float((block * block).sum())
        n += len(block)
    return total / n, square / n


# ---------------------------------------------------------------------------------------------
# Training


@torch.no_grad()
def evaluate(
    sae: TopKSAE, array, layer: int, first: int, last: int, skip=None, device: str = "cpu", block_tokens: int = 4096
) -> dict:
    """Over tokens first..last-1: explained variance 1 - sum|x - x_hat|^2 / sum|x - m|^2 with m
    these tokens' own mean (so a held-out set is not credited for the distance between its
    mean and the training mean), the same against the SAE's training mean
    (`explained_variance_training_mean`), mean L0 (latents > 0 per token), and which latents
    fired at all."""
    error = about_training = square = 0.0
    total = torch.zeros(sae.d_in, dtype=torch.float64, device=device)
    active = 0.0
    fired = torch.zeros(sae.d_sae, dtype=torch.bool, device=device)
    n = 0
    for block in token_blocks(array, layer, first, last, block_tokens, skip):
        x = torch.from_numpy(block).to(device)
        values, indices = sae.encode(x)
        x_hat = sae.decode(values, indices)
        error += float((x - x_hat).double().pow(2).sum())
        about_training += float((x - sae.mean).double().pow(2).sum())
        # sum|x - m|^2 = sum|x - c|^2 - n|m - c|^2 for any c; c = the training mean keeps it stable.
        total += (x - sae.mean).double().sum(dim=0)
        on = values > 0
        active += float(on.sum())
        fired[indices[on]] = True
        n += len(x)
    baseline = about_training - float(total.pow(2).sum()) / n if n else 0.0
    nmse = error / baseline if baseline > 0 else float("nan")
    nmse_training = error / about_training if about_training > 0 else float("nan")
    return {"tokens": n, "nmse": nmse, "explained_variance": 1 - nmse,
            "explained_variance_training_mean": 1 - nmse_training, "l0": active / max(n, 1), "fired": fired.cpu()}


def fingerprint(settings: dict) -> str:
    return hashlib.sha256(json.dumps(settings, sort_keys=True, default=str).encode()).hexdigest()


def save_checkpoint(path: Path, state: dict) -> None:
    """Atomic: a run killed while writing leaves the previous checkpoint."""
    tmp = path.with_name(path.name + ".partial")
    torch.save(state, tmp)
    os.replace(tmp, path)


def learning_rate(step: int, steps: int, lr: float) -> float:
    """Constant, then linear decay to 0 over the last fifth of training."""
    tail = max(1, steps // 5)
    return lr * min(1.0, (steps - step) / tail)


def train_sae(
    store,
    layer: int,
    train_records: tuple[int, int],
    held_out_records: tuple[int, int],
    *,
    expansion: int = 4,
    k: int = 32,
    steps: int = 1000,
    batch_tokens: int = 1024,
    lr: float = 1e-3,
    seed: int = 0,
    tied: bool = False,
    auxk: float = 1 / 32,
    skip_first: bool = True,
    buffer_tokens: int = 16384,
    checkpoint_path: str | Path | None = None,
    checkpoint_every: int = 200,
    device: str = "cpu",
    log=None,
) -> tuple[TopKSAE, dict]:
    """Train a TopK SAE on the tokens of records train_records[0]..[1]-1 of `store` at model
    layer `layer`, and measure it on the records of `held_out_records`.

    `auxk` weighs the AuxK loss (Gao et al.): the dead latents (none fired on the last epoch's
    worth of tokens) with the largest pre-activations, k_aux = d_in / 2 of them at most, learn to
    reconstruct what the live ones missed; 0 turns it off. `skip_first` leaves each record's
    first token out of training and of every measurement (see `first_tokens`). A checkpoint with the same settings at
    `checkpoint_path` is resumed; it is rewritten every `checkpoint_every` steps and removed at
    the end. Returns the SAE and its metrics (loss curve, held-out explained variance, dead
    fraction, L0)."""
    log = log or (lambda text: print(text, file=sys.stderr))
    array, index = store.root["activations"], layer_index(store, layer)
    offsets = store.offsets
    first, last = int(offsets[train_records[0]]), int(offsets[train_records[1]])
    held_first, held_last = int(offsets[held_out_records[0]]), int(offsets[held_out_records[1]])
    d_in = array.shape[2]
    d_sae = expansion * d_in
    settings = {
        "store": str(store.attrs.get("fingerprint")), "layer": layer, "tokens": [first, last], "d_sae": d_sae, "k": k,
        "steps": steps, "batch_tokens": batch_tokens, "lr": lr, "seed": seed, "tied": tied, "auxk": auxk,
        "buffer_tokens": buffer_tokens, "skip_first": skip_first,
    }
    mark = fingerprint(settings)
    skip = first_tokens(offsets) if skip_first else None
    stream = TokenStream(array, index, first, last, batch_tokens, buffer_tokens, seed, skip)
    dead_after = stream.tokens  # tokens without firing before a latent counts as dead: one epoch
    k_aux = d_in // 2

    sae = TopKSAE(d_in, d_sae, k, tied, seed).to(device)
    optimizer = torch.optim.Adam(sae.parameters(), lr=lr, betas=(0.9, 0.999), eps=6.25e-10, fused=True)
    since_fired = torch.zeros(d_sae, dtype=torch.long, device=device)
    curve, start = [], 0
    checkpoint_path = Path(checkpoint_path) if checkpoint_path else None
    resumed = None
    if checkpoint_path and checkpoint_path.exists():
        state = torch.load(checkpoint_path, map_location=device, weights_only=False)
        if state.get("fingerprint") == mark:
            resumed = state
        else:
            log(f"{checkpoint_path}: written under other settings; training afresh")
    if resumed:
        sae.load_state_dict(resumed["sae"])
        optimizer.load_state_dict(resumed["optimizer"])
        since_fired.copy_(resumed["since_fired"])
        curve, start = resumed["curve"], resumed["step"]
        log(f"resuming from {checkpoint_path} at step {start} of {steps}")
    else:
        mean, square = moments(array, index, first, last, skip)
        scale = math.sqrt(d_in / square) if square > 0 else 1.0
        with torch.no_grad():
            sae.scale.fill_(scale)
            sae.mean.copy_(torch.from_numpy(mean).float())
            sae.b_dec.copy_(torch.from_numpy(mean * scale).float())

    log_every = max(1, steps // 20)
    began = time.perf_counter()
    batches = stream.batches(start) if start < steps else iter(())
    for step, batch in batches:
        if step >= steps:
            break
        for group in optimizer.param_groups:
            group["lr"] = learning_rate(step, steps, lr)
        x_n = torch.from_numpy(batch).to(device) * sae.scale
        pre = sae.pre_acts(x_n)
        indices = pre.detach().topk(k, dim=-1).indices
        values = torch.relu(pre.gather(1, indices))
        x_hat = sae.decode_normalised(values, indices)
        residual = x_n - x_hat
        mse = residual.pow(2).sum(dim=1).mean()
        loss = mse
        dead = since_fired >= dead_after
        aux = torch.zeros((), device=device)
        if auxk > 0 and bool(dead.any()):
            n_aux = min(k_aux, int(dead.sum()))
            aux_indices = pre.detach().masked_fill(~dead, -torch.inf).topk(n_aux, dim=-1).indices
            aux_values = torch.relu(pre.gather(1, aux_indices))
            target = residual.detach()
            guess = SparseDecode.apply(aux_values, aux_indices, sae.W_dec)
            aux = (target - guess).pow(2).sum() / target.pow(2).sum().clamp_min(1e-12)
            loss = loss + auxk * aux
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        sae.project_decoder_grad()
        optimizer.step()
        sae.normalise_decoder()
        with torch.no_grad():
            since_fired += len(batch)
            since_fired[indices[values > 0]] = 0
            if step % log_every == 0 or step == steps - 1:
                variance = (x_n - x_n.mean(dim=0)).pow(2).sum(dim=1).mean()
                point = {
                    "step": step,
                    "nmse": float(mse / variance),
                    "aux": float(aux),
                    # Dead during training: no firing over the last `dead_after` tokens (one epoch).
                    "dead_fraction": float((since_fired >= dead_after).float().mean()),
                    "dead_after_tokens": dead_after,
                }
                curve.append(point)
                log(f"step {step}: batch nmse {point['nmse']:.4f}, aux {point['aux']:.4f}, dead {point['dead_fraction']:.3f}")
        if checkpoint_path and (step + 1) % checkpoint_every == 0 and step + 1 < steps:
            save_checkpoint(
                checkpoint_path,
                {"fingerprint": mark, "step": step + 1, "sae": sae.state_dict(), "optimizer": optimizer.state_dict(),
                 "since_fired": since_fired, "curve": curve},
            )
    seconds = time.perf_counter() - began
    sae.eval()
    train = evaluate(sae, array, index, first, last, skip, device)
    held = evaluate(sae, array, index, held_first, held_last, skip, device)
    metrics = {
        "steps": steps,
        "resumed_at": start,
        "train_tokens": train["tokens"],
        "held_out_tokens": held["tokens"],
        "tokens_seen": steps * batch_tokens,
        "seconds": seconds,
        # Against the held-out tokens' own mean; `_training_mean`: against the training mean.
        "held_out_explained_variance": held["explained_variance"],
        "held_out_explained_variance_training_mean": held["explained_variance_training_mean"],
        "held_out_nmse": held["nmse"],
        "held_out_l0": held["l0"],
        "train_explained_variance": train["explained_variance"],
        # Latents that fire on none of the `dead_fraction_tokens` training tokens (every one,
        # first tokens left out under skip_first) once training is done.
        "dead_fraction": float(1 - train["fired"].float().mean()),
        "dead_fraction_tokens": train["tokens"],
        "curve": curve,
    }
    log(
        f"layer {layer}: held-out explained variance {metrics['held_out_explained_variance']:.4f}, "
        f"L0 {metrics['held_out_l0']:.1f}, dead fraction {metrics['dead_fraction']:.4f}, {seconds:.1f} s"
    )
    if checkpoint_path and checkpoint_path.exists():
        checkpoint_path.unlink()
    return sae, {"settings": settings, "metrics": metrics}
