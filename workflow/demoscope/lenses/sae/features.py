"""The SAE lens: per candidate x layer features of a TopK SAE's code, streamed from a store.

For the tokens x_t of one candidate at one layer, with z_t the SAE's latents (>= 0, at most k
non-zero) and x_hat_t its reconstruction:

- `sae_nmse`: sum_t |x_t - x_hat_t|^2 / sum_t |x_t - mean|^2, the normalised reconstruction
  error (mean: the SAE's training mean), i.e. 1 - the explained variance of these tokens;
- `sae_l0`: mean over tokens of the number of latents > 0 (<= k);
- `sae_entropy`: entropy (nats) of the candidate's activation mass m = sum_t z_t, taken as a
  distribution over latents: low when a few latents carry the candidate;
- `sae_task_cosine`: cosine between the candidate's mean latent vector m / n_tokens and the task's,
  the mean of those vectors over all candidates of the store;
- `sae_top_ids`, `sae_top_values`: the `top` latents with the largest mean activation, and
  those means (descriptive; not correlated).

A store with several segments per candidate (the `query` mask: one per probe query) gets
these per segment, the task vector over all segments, and the numeric features averaged over a
candidate's segments; its top latents are those of the mean over its segments.
"""

from __future__ import annotations

import sys

import numpy as np
import polars as pl
import torch
from tqdm import tqdm

from demoscope.lenses.names import SAE as SAE_FEATURES
from demoscope.lenses.sae.model import TopKSAE
from demoscope.lenses.sae.stream import layer_index


@torch.no_grad()
def layer_features(
    store, layer: int, sae: TopKSAE, skip_first: bool = True, block_tokens: int = 8192, device: str = "cpu"
) -> tuple[dict, np.ndarray, dict]:
    """Features of every segment at model layer `layer` (dict of arrays), the segments' mean
    latent vectors, and the store-wide quality of the SAE there. With `skip_first` each
    segment's first token is left out, as in training (`sae_stream.first_tokens`)."""
    index = layer_index(store, layer)
    hidden = store.root["activations"].shape[2]
    if hidden != sae.d_in:
        raise ValueError(f"{store.path}: hidden size {hidden}, but the SAE of layer {layer} reads {sae.d_in}")
    offsets = store.offsets
    n = store.n_candidates
    sums = torch.zeros(4, n, dtype=torch.float64, device=device)  # tokens, error, baseline, active latents
    mass = torch.zeros(n, sae.d_sae, dtype=torch.float64, device=device)
    first_token_spread = 0.0
    spreads = []  # each kept token's squared deviation from the mean: a few floats per token
    for first, last in store.blocks(block_tokens):
        x = torch.from_numpy(np.asarray(store.tokens(index, first, last), dtype=np.float32)).to(device)
        segment = torch.from_numpy(np.repeat(np.arange(first, last), np.diff(offsets[first : last + 1]))).to(device)
        starts = torch.from_numpy(offsets[first:last][np.diff(offsets[first : last + 1]) > 0] - offsets[first]).to(device)
        first_token_spread += float((x[starts] - sae.mean).double().pow(2).sum())
        if skip_first:
            keep = torch.ones(len(x), dtype=torch.bool, device=device)
            keep[starts] = False
            x, segment = x[keep], segment[keep]
        values, indices = sae.encode(x)
        x_hat = sae.decode(values, indices)
        spread = (x - sae.mean).double().pow(2).sum(dim=1)
        spreads.append(spread.cpu().numpy())
        per_token = torch.stack(
            [
                torch.ones(len(x), dtype=torch.float64, device=device),
                (x - x_hat).double().pow(2).sum(dim=1),
                spread,
                (values > 0).double().sum(dim=1),
            ]
        )
        # index_add_ and index_put_ accumulate in order on the CPU: the sums are deterministic.
        sums.index_add_(1, segment, per_token)
        rows = segment[:, None].expand_as(indices)
        mass.index_put_((rows.reshape(-1), indices.reshape(-1)), values.double().reshape(-1), accumulate=True)
    tokens, error, baseline, active = sums.cpu().numpy()
    mass = mass.cpu().numpy()
    total = mass.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        p = mass / total[:, None]
        entropy = -np.where(p > 0, p * np.log(np.where(p > 0, p, 1.0)), 0.0).sum(axis=1)
        mean_vector = mass / tokens[:, None]
        task = np.nanmean(mean_vector, axis=0)
        cosine = mean_vector @ task / (np.linalg.norm(mean_vector, axis=1) * np.linalg.norm(task))
        features = {
            "sae_nmse": error / baseline,
            "sae_l0": active / tokens,
            "sae_entropy": np.where(total > 0, entropy, np.nan),
            "sae_task_cosine": cosine,
        }
    all_spread = baseline.sum() + (first_token_spread if skip_first else 0.0)
    spreads = np.sort(np.concatenate(spreads))[::-1]
    top_tokens = spreads[: max(1, len(spreads) // 100)].sum() / spreads.sum() if spreads.sum() > 0 else float("nan")
    quality = {
        "tokens": int(tokens.sum()),
        "explained_variance": 1 - error.sum() / baseline.sum() if baseline.sum() > 0 else float("nan"),
        "l0": active.sum() / tokens.sum() if tokens.sum() else float("nan"),
        "dead_fraction": float((mass.sum(axis=0) == 0).mean()),
        # The share of the variance (about the SAE's mean) on the segments' first tokens: an
        # attention sink's massive activations can make it most of the total.
        "first_token_variance_share": first_token_spread / all_spread if all_spread > 0 else float("nan"),
        # The share on the 1% of the lens's tokens that deviate most: large where a few tokens
        # (say, every " the") carry massive activations, and then so is the explained variance.
        "top_tokens_variance_share": top_tokens,
    }
    return features, mean_vector, quality


def top_latents(vectors: np.ndarray, top: int) -> tuple[list[list[int]], list[list[float]]]:
    """Per row: the ids of its `top` largest entries, largest first (ties: lower id first), and the values."""
    top = min(top, vectors.shape[1])
    order = np.argsort(-vectors, axis=1, kind="stable")[:, :top]
    return order.tolist(), np.take_along_axis(vectors, order, axis=1).tolist()


def sae_features(
    store, saes: dict[int, TopKSAE], top: int = 8, skip_first: bool = True, block_tokens: int = 8192, device: str = "cpu"
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """(features, quality): one row per candidate x layer of `saes` (model layer -> SAE) with
    cand_id, layer, SAE_FEATURES, sae_top_ids, sae_top_values; and one row per layer with the
    SAE's explained variance, L0 and dead fraction over all tokens of this store."""
    per_candidate = int(store.attrs.get("segments_per_candidate", 1))
    n_candidates = store.n_candidates // per_candidate
    cand_ids = np.arange(store.n_candidates) // per_candidate
    frames, quality = [], []
    for layer in tqdm(sorted(saes), desc="sae features", file=sys.stderr):
        features, vectors, summary = layer_features(store, layer, saes[layer], skip_first, block_tokens, device)
        frame = pl.DataFrame({"cand_id": cand_ids, **features}).group_by("cand_id").agg(
            *[pl.col(name).mean() for name in SAE_FEATURES]
        )
        # Mean over a candidate's segments that have tokens; a candidate with none has no
        # latents at all (NaN features, no top latents), never latents 0..k-1 at 0.
        grouped = vectors.reshape(n_candidates, per_candidate, -1)
        present = ~np.isnan(grouped[..., 0])
        counts = present.sum(axis=1)
        candidate_vectors = np.where(present[..., None], grouped, 0.0).sum(axis=1) / np.maximum(counts, 1)[:, None]
        ids, values = top_latents(candidate_vectors, top)
        ids = [row if n else [] for row, n in zip(ids, counts)]
        values = [row if n else [] for row, n in zip(values, counts)]
        frame = frame.sort("cand_id").with_columns(
            pl.lit(layer).alias("layer"),
            pl.Series("sae_top_ids", ids, dtype=pl.List(pl.Int64)),
            pl.Series("sae_top_values", values, dtype=pl.List(pl.Float64)),
        )
        frames.append(frame.select("cand_id", "layer", *SAE_FEATURES, "sae_top_ids", "sae_top_values"))
        info = getattr(saes[layer], "info", {})
        metrics = info.get("metrics", {})
        quality.append(
            {
                "layer": layer,
                "d_sae": saes[layer].d_sae,
                "k": saes[layer].k,
                "held_out_explained_variance": float(metrics.get("held_out_explained_variance", np.nan)),
                "train_dead_fraction": float(metrics.get("dead_fraction", np.nan)),
                # The training tokens that dead fraction was counted over (NaN: not recorded).
                "train_dead_tokens": float(metrics.get("dead_fraction_tokens", np.nan)),
                "store_explained_variance": summary["explained_variance"],
                "store_l0": summary["l0"],
                "store_dead_fraction": summary["dead_fraction"],
                "first_token_variance_share": summary["first_token_variance_share"],
                "top_tokens_variance_share": summary["top_tokens_variance_share"],
                "store_tokens": summary["tokens"],
            }
        )
    features = pl.concat(frames).with_columns(pl.col("layer").cast(pl.Int64)).sort("cand_id", "layer")
    return features, pl.DataFrame(quality)
