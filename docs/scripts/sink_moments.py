"""The attention sink and the moments, measured (docs/masks.md, "The first token").

Draws a task's candidates as build_prompts does, dumps them with a real model under the
given masks and sites, and computes the features with and without each segment's first
token. For each moment it prints Spearman's rho with `n_tokens` over the candidates, per
layer, summarised as the median and the largest |rho| over layers: a moment that mostly
tracks 1 / n_tokens (the sink's share of the tokens) shows a large |rho| with the first token
kept and a smaller one without it.

    python docs/scripts/sink_moments.py --model resources/models/smollm2-135m \\
        --data-dir ../shared/data --task sst2 --candidates 40
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch
import yaml
from scipy import stats

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "workflow"))

from demoscope.lm import models  # noqa: E402
from demoscope.activations.dump import dump_activations  # noqa: E402
from demoscope.lenses.features import compute_features  # noqa: E402
from demoscope.lenses.moments import MOMENTS  # noqa: E402
from demoscope.data.prompts import build_prompt_tables  # noqa: E402
from demoscope.data.sampling import balanced_head  # noqa: E402
from demoscope.activations.store import open_store  # noqa: E402
from demoscope.data.tasks import has_split, load_split  # noqa: E402
from demoscope.data.templates import Template  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]


def summary(features, moment: str) -> tuple[float, float]:
    """(median |rho|, max |rho|) over layers of the moment against n_tokens."""
    rhos = []
    for layer in sorted(set(features["layer"].to_list())):
        part = features.filter(features["layer"] == layer)
        rho = stats.spearmanr(part[moment].to_numpy(), part["n_tokens"].to_numpy()).statistic
        rhos.append(abs(rho))
    rhos = np.array(rhos, dtype=float)
    return float(np.nanmedian(rhos)), float(np.nanmax(rhos))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", required=True, help="a prepared model folder")
    parser.add_argument("--data-dir", required=True)
    parser.add_argument("--config", default=str(ROOT / "config" / "config.yaml"))
    parser.add_argument("--task", default="sst2")
    parser.add_argument("--candidates", type=int, default=40)
    # Not `query`: its segments are the same probe queries after every candidate, so n_tokens is constant.
    parser.add_argument("--masks", nargs="*", default=["causal", "instruction"])
    parser.add_argument("--sites", nargs="*", default=["mlp_out", "resid"])
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    config = yaml.safe_load(Path(args.config).read_text())
    task = config["tasks"][args.task]
    template = Template.from_config(task.get("template"))
    splits = {s: load_split(task, s, args.data_dir) for s in ("train", "dev", "test") if has_split(task, s, args.data_dir)}
    model, tokenizer, device = models.load(args.model, "cpu", "float32")
    sizes = {**task["sizes"], "candidates": args.candidates}
    tables = build_prompt_tables(splits, template, sizes, config.get("seed", 0), tokenizer)
    demos = tables["candidates"]["demonstration"].to_list()
    probes = tables["probe_queries"]
    context = {
        "instruction": {"instruction": template.instruction, "separator": template.separator},
        "query": {
            "instruction": template.instruction, "separator": template.separator,
            "queries": probes["query"].gather(balanced_head(probes["label"].to_list(), 2)).to_list(),
        },
    }
    result = {}
    with tempfile.TemporaryDirectory() as tmp:
        for mask in args.masks:
            for site in args.sites:
                path = Path(tmp) / f"{mask}-{site}.zarr"
                dump_activations(model, tokenizer, demos, path, site, device, "float32", mask=mask, batch_tokens=2048,
                                 **context.get(mask, {}))
                store = open_store(path)
                kept = compute_features(store, skip_first_token=False)
                skipped = compute_features(store, skip_first_token=True)
                rows = {}
                for moment in MOMENTS:
                    rows[moment] = {"kept": summary(kept, moment), "skipped": summary(skipped, moment)}
                result[f"{mask}/{site}"] = rows
                print(f"{mask}/{site}: {json.dumps(rows)}", file=sys.stderr)
    print(f"{args.task}, {len(demos)} candidates: |Spearman rho| of each moment with n_tokens over layers "
          "(median / max), first token kept -> left out\n")
    print("| store | " + " | ".join(MOMENTS) + " |")
    print("|---|" + "---|" * len(MOMENTS))
    for store_name, rows in result.items():
        cells = [
            f"{rows[m]['kept'][0]:.2f} / {rows[m]['kept'][1]:.2f} -> {rows[m]['skipped'][0]:.2f} / {rows[m]['skipped'][1]:.2f}"
            for m in MOMENTS
        ]
        print(f"| {store_name} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
