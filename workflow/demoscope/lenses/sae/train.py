"""Training and measuring a TopK SAE on a store's tokens (`train_sae`, `evaluate`).

Training is seeded, checkpoints every N steps and resumes from a checkpoint to the same bits
as an uninterrupted run (on the CPU).
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import sys
import time
from pathlib import Path

import torch

from demoscope.lenses.sae.model import SparseDecode, TopKSAE
from demoscope.lenses.sae.stream import TokenStream, first_tokens, layer_index, moments, token_blocks


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

    sae = TopKSAE(d_in, d_sae, k, tied, seed).to(device)
    optimizer = torch.optim.Adam(sae.parameters(), lr=lr, betas=(0.9, 0.999), eps=6.25e-10, fused=True)
    since_fired = torch.zeros(d_sae, dtype=torch.long, device=device)
    checkpoint_path = Path(checkpoint_path) if checkpoint_path else None
    resumed = _resumable(checkpoint_path, mark, device, log)
    if resumed:
        sae.load_state_dict(resumed["sae"])
        optimizer.load_state_dict(resumed["optimizer"])
        since_fired.copy_(resumed["since_fired"])
        curve, start = resumed["curve"], resumed["step"]
        log(f"resuming from {checkpoint_path} at step {start} of {steps}")
    else:
        _initialise(sae, array, index, first, last, skip)
        curve, start = [], 0

    log_every = max(1, steps // 20)
    began = time.perf_counter()
    batches = stream.batches(start) if start < steps else iter(())
    for step, batch in batches:
        if step >= steps:
            break
        for group in optimizer.param_groups:
            group["lr"] = learning_rate(step, steps, lr)
        x_n, mse, aux = _train_step(sae, optimizer, batch, since_fired, dead_after, auxk, device)
        if step % log_every == 0 or step == steps - 1:
            point = _curve_point(step, x_n, mse, aux, since_fired, dead_after)
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
    metrics = _metrics(train, held, steps, start, batch_tokens, seconds, curve)
    log(
        f"layer {layer}: held-out explained variance {metrics['held_out_explained_variance']:.4f}, "
        f"L0 {metrics['held_out_l0']:.1f}, dead fraction {metrics['dead_fraction']:.4f}, {seconds:.1f} s"
    )
    if checkpoint_path and checkpoint_path.exists():
        checkpoint_path.unlink()
    return sae, {"settings": settings, "metrics": metrics}


def _resumable(checkpoint_path: Path | None, mark: str, device: str, log) -> dict | None:
    """The checkpoint at `checkpoint_path` if one was written under the same settings."""
    if not (checkpoint_path and checkpoint_path.exists()):
        return None
    state = torch.load(checkpoint_path, map_location=device, weights_only=False)
    if state.get("fingerprint") == mark:
        return state
    log(f"{checkpoint_path}: written under other settings; training afresh")
    return None


def _initialise(sae: TopKSAE, array, index: int, first: int, last: int, skip) -> None:
    """A fresh SAE's input scale (mean squared norm d_in), training mean, and decoder bias at
    that mean."""
    mean, square = moments(array, index, first, last, skip)
    scale = math.sqrt(sae.d_in / square) if square > 0 else 1.0
    with torch.no_grad():
        sae.scale.fill_(scale)
        sae.mean.copy_(torch.from_numpy(mean).float())
        sae.b_dec.copy_(torch.from_numpy(mean * scale).float())


def _train_step(sae: TopKSAE, optimizer, batch, since_fired: torch.Tensor, dead_after: int, auxk: float, device: str):
    """One optimiser step on a batch of raw tokens: the TopK reconstruction loss plus, while
    some latents are dead, the AuxK loss; then the decoder rows back to unit norm and
    `since_fired` (tokens since each latent last fired) brought up to date. Returns the
    normalised batch, its reconstruction MSE and the AuxK loss."""
    x_n = torch.from_numpy(batch).to(device) * sae.scale
    pre = sae.pre_acts(x_n)
    indices = pre.detach().topk(sae.k, dim=-1).indices
    values = torch.relu(pre.gather(1, indices))
    x_hat = sae.decode_normalised(values, indices)
    residual = x_n - x_hat
    mse = residual.pow(2).sum(dim=1).mean()
    loss = mse
    dead = since_fired >= dead_after
    aux = torch.zeros((), device=device)
    if auxk > 0 and bool(dead.any()):
        n_aux = min(sae.d_in // 2, int(dead.sum()))  # k_aux = d_in / 2 at most
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
    return x_n, mse, aux


@torch.no_grad()
def _curve_point(step: int, x_n, mse, aux, since_fired: torch.Tensor, dead_after: int) -> dict:
    variance = (x_n - x_n.mean(dim=0)).pow(2).sum(dim=1).mean()
    return {
        "step": step,
        "nmse": float(mse / variance),
        "aux": float(aux),
        # Dead during training: no firing over the last `dead_after` tokens (one epoch).
        "dead_fraction": float((since_fired >= dead_after).float().mean()),
        "dead_after_tokens": dead_after,
    }


def _metrics(train: dict, held: dict, steps: int, start: int, batch_tokens: int, seconds: float, curve: list) -> dict:
    return {
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
