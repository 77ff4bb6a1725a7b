"""One strategy instance's choice of demonstrations, from the signal tables it reads.

`select` turns the tables into arrays, calls the selector of `spec["kind"]` and returns the
selection table: `query_id` (-1 for a set shared by every test query), `position` (order in
the prompt, 0 first), `cand_id`, `score` (the value ranked on, NaN where the order is greedy
or random) and `detail` (how the choice was made, e.g. the layer the shortcut picked).

It is never given a test label: the test queries reach it (when at all) as `label_free`
leaves them, their ids, input and query text and options, and the similarity-based kinds read
their embeddings, made from the query text alone. No test query is ever among its own
demonstrations: a candidate that duplicates a test query (`contamination`) is left out of that
query's choices, and out of a set shared by every query; the finished table is checked.

Per-query kinds (`per_query` in `strategies.STRATEGIES`) write one set per test query: `similarity` (KATE),
`bm25`, `dpp`, `mdl` and `cone` (`retrievers`); MDL and ConE read the model through an
`lmscore.LMScorer`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import polars as pl

from demoscope.data import contamination
from demoscope.selection import retrievers, selectors

# The only columns of the test queries a select job reads: never label, answer or gold_index.
LABEL_FREE = ("query_id", "record_id", "input", "query", "options")

SCHEMA = {"query_id": pl.Int64, "position": pl.Int64, "cand_id": pl.Int64, "score": pl.Float64, "detail": pl.String}


def prepared_embeddings(embeddings: pl.DataFrame, cand_ids: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(candidate vectors in `cand_ids` order, test query ids, test query vectors), centred on
    the candidates' mean and scaled to unit length: decoder hidden states share one large
    common direction, which would otherwise dominate every cosine similarity."""
    def part(name):
        rows = embeddings.filter(pl.col("set") == name).sort("id")
        return rows["id"].to_numpy(), np.asarray(rows["embedding"].to_list(), dtype=float)

    ids, cands = part("candidate")
    if not np.isin(cand_ids, ids).all():
        raise ValueError("embeddings: the candidate rows do not match the candidates table")
    cands = cands[np.searchsorted(ids, cand_ids)]
    test_ids, tests = part("test")
    centre = cands.mean(axis=0)
    return selectors.unit(cands - centre), test_ids, selectors.unit(tests - centre) if len(tests) else tests


def best_layer(correlations: pl.DataFrame, feature: str, quality: str, layers: list[int] | None = None) -> tuple[int, str]:
    """The layer where `feature` has the largest finite |rho| with `quality` on the quality
    set; the middle layer when every rho is NaN (a constant quality, say), or when the metric
    was not correlated at all because it is degenerate (its rows are absent; `layers` are the
    feature table's)."""
    rows = correlations.filter((pl.col("feature") == feature) & (pl.col("quality") == quality))
    if rows.is_empty() and layers and correlations.filter(pl.col("quality") == quality).is_empty():
        layer = sorted(layers)[len(layers) // 2]
        return layer, f"layer {layer} ({quality} is degenerate, so it was not correlated: the middle layer)"
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
        layer, detail = best_layer(correlations, feature, spec["quality"], features["layer"].unique().to_list())
    else:
        layer, detail = int(spec["layer"]), f"layer {spec['layer']}"
    at_layer = features.filter(pl.col("layer") == layer)
    if at_layer.is_empty():
        known = features["layer"].unique().sort().to_list()
        raise ValueError(f"selection.activation: layer {layer} is not in the feature table (layers {known[0]}..{known[-1]})")
    values = dict(zip(at_layer["cand_id"].to_list(), at_layer[feature].to_list()))
    return np.array([values.get(c, np.nan) for c in cand_ids], dtype=float), detail


def label_free(queries: pl.DataFrame) -> pl.DataFrame:
    """The test queries as a select job may see them: ids, input and query text, options."""
    return queries.select(*[c for c in LABEL_FREE if c in queries.columns])


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
    queries: pl.DataFrame | None = None,
    scorer=None,
) -> pl.DataFrame:
    """The selection table of one strategy instance. `balance`: the k demonstrations are
    label-balanced (classification); `seed` is the run's seed (the random strategy adds its own).
    `queries` (the test queries, `label_free`) lets the contamination guard keep each test
    query's duplicates out of its sets; `scorer` (an `lmscore.LMScorer`) is the model MDL and
    ConE read. The kind's `choose` comes from the strategy registry (`strategies.STRATEGIES`)."""
    # Imported here: the registry imports this module's kinds.
    from demoscope.selection.strategies import strategy

    entry = strategy(spec["kind"])
    queries = None if queries is None else label_free(queries)
    allowed = None if queries is None else contamination.allowed(candidates, queries)
    if not entry.per_query and allowed is not None and not allowed.all():
        # A set shared by every test query: a duplicate of any of them stays out of the pool.
        candidates = candidates.filter(pl.Series(allowed.all(axis=0)))
    inputs = Inputs(
        candidates, k, candidates["label"].to_numpy() if balance else None, seed, features, correlations, quality,
        embeddings, zero_shot, queries, allowed, scorer,
    )
    if entry.per_query:
        table = _table(entry.choose(spec, inputs))
    else:
        rows, score, detail = entry.choose(spec, inputs)
        cand_ids = inputs.cand_ids
        score = np.full(len(cand_ids), np.nan) if score is None else score
        table = _table([(-1, p, int(cand_ids[r]), float(score[r]), detail) for p, r in enumerate(rows)])
    if queries is not None:
        contamination.check_selection(table, candidates, queries)
    return table


@dataclass
class Inputs:
    """What a strategy kind's `choose(spec, inputs)` reads: the candidates (for a shared set,
    already without any test query's duplicate), k, the labels to balance on (None: no
    balance), the run's seed, the signal tables its registry entry `reads` (None otherwise),
    the label-free test queries, `allowed` (test query x candidate, None without queries) and
    the model scorer of the kinds that load the model.

    A shared-set kind returns (candidate rows in prompt order, a score per candidate or None,
    detail); a per-query kind returns the table's rows (query_id, position, cand_id, score,
    detail)."""

    candidates: pl.DataFrame
    k: int
    labels: np.ndarray | None
    seed: int
    features: pl.DataFrame | None = None
    correlations: pl.DataFrame | None = None
    quality: pl.DataFrame | None = None
    embeddings: pl.DataFrame | None = None
    zero_shot: pl.DataFrame | None = None
    queries: pl.DataFrame | None = None
    allowed: np.ndarray | None = None
    scorer: object = None

    @property
    def cand_ids(self) -> np.ndarray:
        return self.candidates["cand_id"].to_numpy()


# Shared-set kinds: one set for every test query.


def choose_random(spec, x: Inputs):
    rows = selectors.random_k(len(x.cand_ids), x.k, np.random.default_rng([x.seed, 0, spec["seed"]]), x.labels)
    return rows, None, f"seed {spec['seed']}"


def choose_activation(spec, x: Inputs):
    score, detail = _feature_scores(spec, x.features, x.correlations, x.cand_ids)
    rows = selectors.top_k(score, x.k, x.labels, largest=spec["direction"] == "top")
    return rows, score, f"{spec['feature']} at {detail}, {spec['mask']}/{spec['site']}, {spec['direction']} {x.k}"


def choose_quality_oracle(spec, x: Inputs):
    by_id = x.quality.sort("cand_id")
    order = np.searchsorted(by_id["cand_id"].to_numpy(), x.cand_ids)
    score = by_id["accuracy"].to_numpy()[order].astype(float)
    tiebreak = by_id["gold_logprob"].to_numpy()[order] if "gold_logprob" in by_id.columns else None
    rows = selectors.top_k(score, x.k, x.labels, tiebreak=tiebreak)
    return rows, score, "top 1-shot accuracy on the quality queries (ties: gold log-prob); an upper reference"


def choose_uncertainty(spec, x: Inputs):
    by_id = x.zero_shot.sort("cand_id")
    score = by_id["uncertainty"].to_numpy()[np.searchsorted(by_id["cand_id"].to_numpy(), x.cand_ids)]
    rows = selectors.top_k(score, x.k, x.labels, largest=spec["end"] == "most")
    return rows, score, f"{spec['end']} uncertain zero-shot"


def choose_diversity(spec, x: Inputs):
    cands, _, _ = prepared_embeddings(x.embeddings, x.cand_ids)
    return selectors.k_center(cands, x.k, x.labels), None, "k-center greedy"


def choose_votek(spec, x: Inputs):
    cands, _, _ = prepared_embeddings(x.embeddings, x.cand_ids)
    rows = selectors.vote_k(cands, x.k, spec["neighbours"], spec["rho"], x.labels)
    return rows, None, f"fast vote-k, {spec['neighbours']} neighbours, rho {spec['rho']}"


# Per-query kinds: one set per test query; rows of `allowed` (None: every candidate) follow the
# test ids.


def _query_vectors(x: Inputs):
    """(candidate vectors, test ids, test vectors, test x candidate cosine, allowed), the test
    rows aligned with the queries table when there is one."""
    cands, test_ids, tests = prepared_embeddings(x.embeddings, x.cand_ids)
    if x.queries is not None:
        # Align the embeddings' test rows with the queries table.
        position = {int(q): i for i, q in enumerate(test_ids)}
        order = [position[int(q)] for q in x.queries["query_id"]]
        test_ids, tests = test_ids[order], tests[order]
    return cands, test_ids, tests, tests @ cands.T, _allowed(x, test_ids)


def _allowed(x: Inputs, test_ids) -> np.ndarray:
    return np.ones((len(test_ids), len(x.cand_ids)), dtype=bool) if x.allowed is None else x.allowed


def choose_similarity(spec, x: Inputs):
    cands, test_ids, tests, similarity, allowed = _query_vectors(x)
    cand_ids, rows = x.cand_ids, []
    sets = selectors.nearest(cands, tests, x.k, x.labels, allowed=allowed)
    for i, q in enumerate(test_ids):
        rows += [(int(q), p, int(cand_ids[c]), float(similarity[i, c]), "nearest by cosine, most similar last")
                 for p, c in enumerate(sets[i])]
    return rows


def choose_bm25(spec, x: Inputs):
    test_ids = x.queries["query_id"].to_numpy()
    allowed, cand_ids, rows = _allowed(x, test_ids), x.cand_ids, []
    scores = retrievers.bm25_scores(x.candidates["input"].to_list(), x.queries["input"].to_list())
    for i, q in enumerate(test_ids):
        chosen = selectors.top_k(np.where(allowed[i], scores[i], np.nan), x.k, x.labels)[::-1]
        rows += [(int(q), p, int(cand_ids[c]), float(scores[i, c]), "BM25 over the input text, best last")
                 for p, c in enumerate(chosen)]
    return rows


def choose_dpp(spec, x: Inputs):
    cands, test_ids, tests, similarity, allowed = _query_vectors(x)
    cand_ids, labels, rows = x.cand_ids, x.labels, []
    detail = f"k-DPP greedy MAP over the {spec['candidates']} most similar, scale {spec['scale']}, most relevant last"
    for i, q in enumerate(test_ids):
        short = retrievers.top_n(similarity[i], spec["candidates"], allowed[i])
        kernel, relevance = retrievers.dpp_kernel(tests[i], cands[short], spec["scale"])
        picked = retrievers.greedy_map(kernel, x.k, None if labels is None else labels[short])
        picked = picked[np.lexsort((picked, relevance[picked]))]  # least relevant first
        rows += [(int(q), p, int(cand_ids[short[j]]), float(similarity[i, short[j]]), detail)
                 for p, j in enumerate(picked)]
    return rows


def choose_cone(spec, x: Inputs):
    _, test_ids, _, similarity, allowed = _query_vectors(x)
    cand_ids, rows = x.cand_ids, []
    detail = (f"ConE: lowest cross-entropy of the test input after the candidate, among the "
              f"{spec['candidates']} most similar, best last")
    shortlists = [retrievers.top_n(similarity[i], spec["candidates"], allowed[i]) for i in range(len(test_ids))]
    pairs = [(i, [int(c)]) for i, short in enumerate(shortlists) for c in short]
    logprob = x.scorer.query_logprob(pairs)
    at = 0
    for i, q in enumerate(test_ids):
        score = np.full(len(cand_ids), np.nan)
        score[shortlists[i]] = logprob[at : at + len(shortlists[i])]
        at += len(shortlists[i])
        chosen = selectors.top_k(score, x.k, x.labels)[::-1]
        rows += [(int(q), p, int(cand_ids[c]), float(score[c]), detail) for p, c in enumerate(chosen)]
    return rows


def choose_mdl(spec, x: Inputs):
    _, test_ids, _, similarity, allowed = _query_vectors(x)
    cand_ids, rows = x.cand_ids, []
    generation = not any(len(o) for o in x.queries["options"].to_list())
    detail = (f"MDL: of {spec['subsets']} orderings of the {spec['candidates']} most similar, the one whose "
              f"prediction has the lowest entropy ({'next token' if generation else 'options'})")
    orderings = []
    for i, q in enumerate(test_ids):
        short = retrievers.top_n(similarity[i], spec["candidates"], allowed[i])
        rng = np.random.default_rng([x.seed, 2, int(q)])
        orderings.append(retrievers.mdl_orderings(short, x.k, spec["subsets"], rng, x.labels))
    pairs = [(i, [int(c) for c in order]) for i, per in enumerate(orderings) for order in per]
    if generation:
        entropy = x.scorer.next_token_entropy(pairs)
    else:
        entropy = retrievers.label_entropy(*x.scorer.option_scores(pairs))
    at = 0
    for i, q in enumerate(test_ids):
        per = entropy[at : at + len(orderings[i])]
        at += len(orderings[i])
        best = int(np.argmin(per))  # ties: the earlier ordering (the k nearest first)
        rows += [(int(q), p, int(cand_ids[c]), float(per[best]), f"{detail}; ordering {best}")
                 for p, c in enumerate(orderings[i][best])]
    return rows


def _table(rows) -> pl.DataFrame:
    return pl.DataFrame(rows, schema=SCHEMA, orient="row")

