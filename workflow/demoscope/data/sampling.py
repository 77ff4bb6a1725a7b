"""Seeded, label-balanced sampling."""

from __future__ import annotations

from collections import defaultdict
from typing import Sequence

import numpy as np

from demoscope.data.records import Record


def balanced_sample(
    records: Sequence[Record], n: int, seed: int, exclude: set[str] = frozenset(), what: str = "sample"
) -> list[Record]:
    """Draw n records with labels as equal in count as n allows.

    The result depends only on the records, n, seed and `exclude`; `allocate` says
    how many of each label are drawn. Without exclusions, a larger n extends each
    label's draw (the order of the result is shuffled anew).
    Records without a label (generation) are sampled uniformly.
    """
    rng = np.random.default_rng(seed)
    every: dict[str, list[Record]] = defaultdict(list)
    for record in records:
        every[record.label].append(record)
    by_label = {label: [r for r in pool if r.id not in exclude] for label, pool in every.items()}
    by_label = {label: pool for label, pool in by_label.items() if pool}
    labels = sorted(by_label)
    if not labels:
        raise ValueError(f"{what}: no records to sample from")
    available = sum(len(v) for v in by_label.values())
    if n > available:
        raise ValueError(f"{what}: asked for {n} records but only {available} are available")
    counts = allocate(n, {label: len(by_label[label]) for label in labels})
    chosen: list[Record] = []
    for label in labels:
        # The permutation runs over every record of the label and passes over the excluded
        # ones, so excluding a few more records replaces only those it had drawn.
        pool = every[label]
        drawn = [pool[j] for j in rng.permutation(len(pool)) if pool[j].id not in exclude]
        chosen.extend(drawn[: counts[label]])
    order = rng.permutation(len(chosen))
    return [chosen[j] for j in order]


def allocate(n: int, sizes: dict[str, int]) -> dict[str, int]:
    """Split n over strata as evenly as their sizes allow (water-filling).

    Small strata (an ARC answer position that only one question has) give
    what they have; the rest is shared evenly, remainders to the labels that
    sort first.
    """
    counts = {label: 0 for label in sizes}
    open_labels = sorted(sizes, key=lambda label: (sizes[label], label))
    remaining = n
    while remaining and open_labels:
        share, extra = divmod(remaining, len(open_labels))
        smallest = open_labels[0]
        if sizes[smallest] <= share:
            counts[smallest] = sizes[smallest]
            remaining -= sizes[smallest]
            open_labels.pop(0)
            continue
        for i, label in enumerate(sorted(open_labels)):
            counts[label] = share + (1 if i < extra else 0)
        remaining = 0
    return counts


def balanced_head(labels: Sequence[str], n: int) -> list[int]:
    """Indices of the first rows of each label, n in all, as balanced as `allocate` makes them.

    For a table that is already a seeded random draw, this is a smaller
    balanced draw that stays the same when the table is only extended.
    """
    sizes: dict[str, int] = defaultdict(int)
    for label in labels:
        sizes[label] += 1
    counts = allocate(min(n, len(labels)), dict(sizes))
    taken: dict[str, int] = defaultdict(int)
    chosen = []
    for i, label in enumerate(labels):
        if taken[label] < counts[label]:
            taken[label] += 1
            chosen.append(i)
    return chosen
