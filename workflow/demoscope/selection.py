"""One strategy instance's choice of demonstrations, from the signal tables it reads.

`select` turns the tables into arrays, calls the selector of `spec["kind"]` and returns the
selection table: `query_id` (-1 for a set shared by every test query), `position` (order in
the prompt, 0 first), `cand_id`, `score` (the value ranked on, NaN where the order is greedy
or random) and `detail` (how the choice was made, e.g. the layer the shortcut picked).

It is never given the test queries' table: the similarity strategy reads the test queries'
embeddings (made from their query text alone), and nothing else about them.
"""

from __future__ import annotations

import numpy as np
import polars as pl

from . import selectors

SCHEMA = {"query_id": pl.Int64, "position": pl.Int64, "cand_id": pl.Int64, "score": pl.Float64, "detail": pl.String}


def prepared_embeddings(embeddings: pl.DataFrame, cand_ids: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(candidate vectors in `cand_ids` order, test query ids, test query vectors), centred on
    the candidates' mean and scaled to unit length: decoder hidden states share one large
    common direction, which would otherwise dominate every cosine similarity."""
    def part(name):
        rows = embeddings.filter(pl.col("set") == name).sort("id")
        return rows["id"].to_numpy(), np.asarray(rows["embedding"].to_list(), dtype=float)

    ids, cands = part("candidate")
    if not np.array_equal(ids, np.sort(cand_ids)):
        raise ValueError("embeddings: the candidate rows do not match the candidates table")
    cands = cands[np.searchsorted(ids, cand_ids)]
    test_ids, tests = part("test")
    centre = cands.mean(axis=0)
    return selectors.unit(cands - centre), test_ids, selectors.unit(tests - centre) if len(tests) else tests


def best_layer(correlations: pl.DataFrame, feature: str, quality: str) -> tuple[int, str]:
    """The layer where `feature` has the largest finite |rho| with `quality` on the quality
    set; the middle layer when every rho is NaN (a constant quality, say)."""
    rows = correlations.filter((pl.col("feature") == feature) & (pl.col("quality") == quality))
    if rows.is_empty():
        raise ValueError(f"correlations: no rows for feature {feature!r} and quality {quality!r}")
    finite = rows.filter(pl.col("rho").is_finite())
    if finite.is_empty():
        layers = sorted(rows["layer"].unique().to_list())
        layer = layers[len(layers) // 2]
        return layer, f"layer {layer} (every rho of {feature} with {quality} is NaN: the middle layer)"
    row = finite.sort([pl.col("rho").abs(), pl.col("layer")], descending=[True, False]).row(0, named=True)
    return row["layer"], f"layer {row['layer']} (largest |rho| of {feature} with {quality}: {row['rho']:.3f})"


def _feature_scores(spec, features, correlations, cand_ids) -> tuple[np.ndarray, str]:
    feature = spec["feature"]
    if feature not in features.columns:
        raise ValueError(f"selection.activation: feature {feature!r} is not a column of the feature table")
    if spec["layer"] == "best":
        layer, detail = best_layer(correlations, feature, spec["quality"])
    else:
        layer, detail = int(spec["layer"]), f"layer {spec['layer']}"
    at_layer = features.filter(pl.col("layer") == layer)
    if at_layer.is_empty():
        known = features["layer"].unique().sort().to_list()
        raise ValueError(f"selection.activation: layer {layer} is not in the feature table (layers {known[0]}..{known[-1]})")
    values = dict(zip(at_layer["cand_id"].to_list(), at_layer[feature].to_list()))
    return np.array([values.get(c, np.nan) for c in cand_ids], dtype=float), detail


def select(
    spec: dict,
    candidates: pl.DataFrame,
    k: int,
    balance: bool,
    seed: int = 0,
    *,
    features: pl.DataFrame | None = None,
    correlations: pl.DataFrame | None = None,
    quality: pl.DataFrame | None = None,
    embeddings: pl.DataFrame | None = None,
    zero_shot: pl.DataFrame | None = None,
) -> pl.DataFrame:
    """The selection table of one strategy instance. `balance`: the k demonstrations are
    label-balanced (classification); `seed` is the run's seed (the random strategy adds its own)."""
    cand_ids = candidates["cand_id"].to_numpy()
    labels = candidates["label"].to_numpy() if balance else None
    kind = spec["kind"]
    score = np.full(len(cand_ids), np.nan)
    detail = ""
    if kind == "random":
        rows = selectors.random_k(len(cand_ids), k, np.random.default_rng([seed, 0, spec["seed"]]), labels)
        detail = f"seed {spec['seed']}"
    elif kind == "activation":
        score, detail = _feature_scores(spec, features, correlations, cand_ids)
        rows = selectors.top_k(score, k, labels, largest=spec["direction"] == "top")
        detail = f"{spec['feature']} at {detail}, {spec['mask']}/{spec['site']}, {spec['direction']} {k}"
    elif kind == "quality_oracle":
        by_id = quality.sort("cand_id")
        order = np.searchsorted(by_id["cand_id"].to_numpy(), cand_ids)
        score = by_id["accuracy"].to_numpy()[order].astype(float)
        tiebreak = by_id["gold_logprob"].to_numpy()[order] if "gold_logprob" in by_id.columns else None
        rows = selectors.top_k(score, k, labels, tiebreak=tiebreak)
        detail = "top 1-shot accuracy on the quality queries (ties: gold log-prob); an upper reference"
    elif kind == "uncertainty":
        by_id = zero_shot.sort("cand_id")
        score = by_id["uncertainty"].to_numpy()[np.searchsorted(by_id["cand_id"].to_numpy(), cand_ids)]
        rows = selectors.top_k(score, k, labels, largest=spec["end"] == "most")
        detail = f"{spec['end']} uncertain zero-shot"
    elif kind in ("diversity", "votek", "similarity"):
        cands, test_ids, tests = prepared_embeddings(embeddings, cand_ids)
        if kind == "similarity":
            sets = selectors.nearest(cands, tests, k, labels)
            similarity = tests @ cands.T
            return _table(
                [(int(q), p, int(cand_ids[c]), float(similarity[i, c]), "nearest by cosine, most similar last")
                 for i, q in enumerate(test_ids) for p, c in enumerate(sets[i])]
            )
        if kind == "diversity":
            rows = selectors.k_center(cands, k, labels)
            detail = "k-center greedy"
        else:
            rows = selectors.vote_k(cands, k, spec["neighbours"], spec["rho"], labels)
            detail = f"fast vote-k, {spec['neighbours']} neighbours, rho {spec['rho']}"
    else:
        raise ValueError(f"unknown selection strategy kind {kind!r}")
    return _table([(-1, p, int(cand_ids[r]), float(score[r]), detail) for p, r in enumerate(rows)])


def _table(rows) -> pl.DataFrame:
    return pl.DataFrame(rows, schema=SCHEMA, orient="row")

