"""Measure an activation store on this machine: bytes on disk per stored value (Zarr's
default compression of real activations) and compute_features' throughput.

Dumps the first candidates of a task with a prepared model, exactly as dump_activations
does, then runs compute_features on the store. Numbers for docs/cluster.md:

    python docs/scripts/measure_store.py --model resources/models/smollm2-135m \\
        --data-dir ../shared/data --task boolq --candidates 48 --store-dtype float16
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "workflow"))

from demoscope.lm import models  # noqa: E402
from demoscope.activations.dump import dump_activations  # noqa: E402
from demoscope.lenses.features import compute_features  # noqa: E402
from demoscope.data.prompts import build_prompt_tables  # noqa: E402
from demoscope.activations.store import open_store  # noqa: E402
from demoscope.data.tasks import has_split, load_split  # noqa: E402
from demoscope.data.templates import Template  # noqa: E402


def du(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", required=True, help="a prepared model folder (resources/models/<name>)")
    parser.add_argument("--config", default="config/paper.yaml")
    parser.add_argument("--data-dir", required=True)
    parser.add_argument("--task", default="boolq")
    parser.add_argument("--candidates", type=int, default=48)
    parser.add_argument("--store-dtype", default="float16")
    parser.add_argument("--sites", nargs="*", default=["mlp_out", "resid"])
    args = parser.parse_args()

    config = yaml.safe_load(Path(args.config).read_text())
    task = config["tasks"][args.task]
    model, tokenizer, device = models.load(args.model, "cpu", "float32")
    splits = {s: load_split(task, s, args.data_dir) for s in ("train", "dev", "test") if has_split(task, s, args.data_dir)}
    sizes = {**task["sizes"], "candidates": args.candidates, "quality_queries": 4, "test_queries": 0}
    demos = build_prompt_tables(splits, Template.from_config(task.get("template")), sizes, 0, tokenizer)["candidates"]
    result = {"model": args.model, "task": args.task, "candidates": args.candidates, "store_dtype": args.store_dtype}
    with tempfile.TemporaryDirectory() as tmp:
        for site in args.sites:
            path = Path(tmp) / f"{site}.zarr"
            start = time.perf_counter()
            dump_activations(model, tokenizer, demos["demonstration"].to_list(), path, site=site, device=device,
                             store_dtype=args.store_dtype, batch_tokens=2048, chunk_tokens=256)
            dumped = time.perf_counter() - start
            store = open_store(path)
            shape = store.root["activations"].shape
            raw = shape[0] * shape[1] * shape[2] * store.root["activations"].dtype.itemsize
            start = time.perf_counter()
            compute_features(store)
            featured = time.perf_counter() - start
            result[site] = {
                "tokens": shape[1], "layers": shape[0], "hidden": shape[2],
                "raw_bytes": raw, "disk_bytes": du(path), "disk_over_raw": round(du(path) / raw, 3),
                "dump_seconds": round(dumped, 1), "features_seconds": round(featured, 1),
                "features_values_per_second": round(shape[0] * shape[1] * shape[2] / featured),
            }
            shutil.rmtree(path)
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
