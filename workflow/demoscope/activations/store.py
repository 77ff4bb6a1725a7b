"""Ragged activation stores in Zarr v3.

Layout of one store (one model x task x mask x site):

    activations  float  (layers, total_tokens, hidden)  chunks (1, chunk_tokens, hidden)
    offsets      int64  (n_candidates + 1,)   candidate i owns tokens offsets[i]:offsets[i+1]
    token_ids    int32  (total_tokens,)

The tokens of all demonstrations are concatenated, so nothing is padded, and
one demonstration's tokens at one layer sit in one or two chunks. A store is
built under `<path>.partial` and renamed into place only when every token is
written; its `complete` attribute records the counts a reader checks. While
it is built, `progress` counts the segments fully written, so a killed dump
resumes where it stopped.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import zarr


class StoreError(RuntimeError):
    """A store that is missing, unfinished, or whose counts disagree."""


def partial_path(path: str | Path) -> Path:
    path = Path(path)
    return path.with_name(path.name + ".partial")


def fingerprint(lengths: list[int], n_layers: int, hidden: int, dtype: str, chunk_tokens: int, attrs: dict) -> str:
    """Everything that shapes a store's bytes: a partial store resumes only under the same one."""
    spec = {"lengths": list(map(int, lengths)), "layers": n_layers, "hidden": hidden, "dtype": dtype,
            "chunk_tokens": chunk_tokens, "attrs": attrs}
    return hashlib.sha256(json.dumps(spec, sort_keys=True, default=str).encode()).hexdigest()


def resume(path: str | Path, print_fn=None) -> tuple[zarr.Group, int] | None:
    """Reopen a partial store written under `fingerprint`, or None to start afresh.

    Returns the group and how many segments are fully written. Zarr writes each
    chunk atomically (temporary file, then rename), so a killed writer leaves old
    or new chunks, never torn ones; only its stray temporary files are removed.
    """
    tmp = partial_path(path)
    if not (tmp / "zarr.json").exists():
        return None
    try:
        root = zarr.open_group(tmp, mode="r+")
        done = int(root.attrs.get("progress", 0))
    except Exception:  # an unreadable partial store is simply rebuilt
        return None
    for stray in tmp.rglob("*.partial"):
        stray.unlink()
    return root, done


def create(
    path: str | Path, lengths: list[int], n_layers: int, hidden: int, dtype: str, chunk_tokens: int, attrs: dict
) -> tuple[zarr.Group, int]:
    """Open the partial store for writing: resumed when an earlier run with the same
    fingerprint left one, else fresh and sized from the known token counts.

    Returns the group and the number of segments already written.
    """
    tmp = partial_path(path)
    mark = fingerprint(lengths, n_layers, hidden, dtype, chunk_tokens, attrs)
    found = resume(path)
    if found is not None and found[0].attrs.get("fingerprint") == mark:
        return found
    shutil.rmtree(tmp, ignore_errors=True)
    offsets = np.concatenate([[0], np.cumsum(lengths, dtype=np.int64)])
    root = zarr.open_group(tmp, mode="w")
    root.create_array(
        "activations",
        shape=(n_layers, int(offsets[-1]), hidden),
        chunks=(1, min(chunk_tokens, max(int(offsets[-1]), 1)), hidden),
        dtype=dtype,
    )
    root.create_array("offsets", data=offsets)
    root.create_array("token_ids", shape=(int(offsets[-1]),), chunks=(max(64 * chunk_tokens, 1),), dtype="int32")
    root.attrs.update(
        {**attrs, "n_candidates": len(lengths), "n_layers": n_layers, "hidden": hidden, "fingerprint": mark, "progress": 0}
    )
    return root, 0


def mark_progress(root: zarr.Group, segments_done: int) -> None:
    """Record that every segment before `segments_done` is fully written."""
    root.attrs["progress"] = int(segments_done)


def finalize(path: str | Path) -> None:
    """Mark the partial store complete and move it into place."""
    tmp = partial_path(path)
    root = zarr.open_group(tmp, mode="r+")
    offsets = root["offsets"][:]
    if int(root.attrs.get("progress", -1)) != len(offsets) - 1:
        raise StoreError(f"{tmp}: only {root.attrs.get('progress')} of {len(offsets) - 1} segments were written")
    root.attrs["complete"] = {"n_candidates": len(offsets) - 1, "total_tokens": int(offsets[-1])}
    shutil.rmtree(path, ignore_errors=True)
    tmp.rename(path)


@dataclass
class ActivationStore:
    """Read side of a finished store."""

    root: zarr.Group
    path: Path

    @property
    def attrs(self) -> dict:
        return dict(self.root.attrs)

    @property
    def offsets(self) -> np.ndarray:
        return self._offsets

    @property
    def n_layers(self) -> int:
        return self.root["activations"].shape[0]

    @property
    def n_candidates(self) -> int:
        return len(self._offsets) - 1

    def lengths(self) -> np.ndarray:
        return np.diff(self._offsets)

    def tokens(self, layer: int, first: int, last: int) -> np.ndarray:
        """Activations of candidates first..last-1 at one layer, concatenated over tokens."""
        return self.root["activations"][layer, self._offsets[first] : self._offsets[last], :]

    def candidate(self, layer: int, i: int) -> np.ndarray:
        return self.tokens(layer, i, i + 1)

    def blocks(self, max_tokens: int):
        """Consecutive candidate ranges of at most max_tokens tokens (at least one candidate each)."""
        first = 0
        while first < self.n_candidates:
            last = first + 1
            while last < self.n_candidates and self._offsets[last + 1] - self._offsets[first] <= max_tokens:
                last += 1
            yield first, last
            first = last


def open_store(path: str | Path) -> ActivationStore:
    """Open a finished store, refusing one whose recorded counts disagree with its arrays."""
    path = Path(path)
    if not path.exists():
        hint = " (an unfinished dump is still at its .partial path)" if partial_path(path).exists() else ""
        raise StoreError(f"{path}: no activation store{hint}")
    root = zarr.open_group(path, mode="r")
    done = root.attrs.get("complete")
    if not done:
        raise StoreError(f"{path}: store is not marked complete; it was not finished by dump_activations")
    store = ActivationStore(root=root, path=path)
    store._offsets = root["offsets"][:]
    total = root["activations"].shape[1]
    n_offsets, offset_tokens = len(store._offsets) - 1, int(store._offsets[-1])
    if done["n_candidates"] != n_offsets or not done["total_tokens"] == offset_tokens == total:
        raise StoreError(
            f"{path}: counts disagree: marker says {done}, offsets give "
            f"{n_offsets} candidates / {offset_tokens} tokens, array has {total} tokens"
        )
    return store
