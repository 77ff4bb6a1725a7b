"""How much of the `query` lens's correlation with quality was the outcome read back (docs/masks.md).

Draws a task's candidates, quality queries and probe queries as build_prompts does, scores
1-shot quality with a real model, dumps the `query` store twice (after each candidate: the
first quality queries of each label, the old leaky lens; and the probe queries, the lens
now), computes the features, and prints for both the largest |Spearman rho| of any feature
with each quality metric, over all layers and over the last third of the layers, and the
rho of the feature and layer the leaky lens ranks first.

    python docs/scripts/query_leak.py --model resources/models/smollm2-135m \\
        --data-dir ../shared/data --task arc_challenge
"""

from __future__ import annotations

import argparse
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
from demoscope.lenses.features import FEATURES, compute_features  # noqa: E402
from demoscope.data.prompts import build_prompt_tables  # noqa: E402
from demoscope.quality.oneshot import score_quality  # noqa: E402
from demoscope.data.sampling import balanced_head  # noqa: E402
from demoscope.activations.store import open_store  # noqa: E402
from demoscope.data.tasks import has_split, load_split  # noqa: E402
from demoscope.data.templates import Template  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
METRICS = ("accuracy", "gold_logprob")


def rhos(features, quality, metric: str) -> dict[tuple[str, int], float]:
    """(feature, layer) -> Spearman rho with the metric over candidates (NaN-free pairs)."""
    y = quality.sort("cand_id")[metric].to_numpy()
    out = {}
    for layer in sorted(set(features["layer"].to_list())):
        part = features.filter(features["layer"] == layer).sort("cand_id")
        for name in FEATURES:
            if name == "n_tokens":
                continue
            x = part[name].to_numpy().astype(float)
            ok = np.isfinite(x) & np.isfinite(y)
            if ok.sum() > 3 and np.ptp(x[ok]) > 0 and np.ptp(y[ok]) > 0:
                out[(name, layer)] = float(stats.spearmanr(x[ok], y[ok]).statistic)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", required=True, help="a prepared model folder")
    parser.add_argument("--data-dir", required=True)
    parser.add_argument("--config", default=str(ROOT / "config" / "config.yaml"))
    parser.add_argument("--task", default="arc_challenge")
    parser.add_argument("--site", default="mlp_out")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    config = yaml.safe_load(Path(args.config).read_text())
    task = config["tasks"][args.task]
    n_queries = config["query_mask"]["queries"]
    template = Template.from_config(task.get("template"))
    splits = {s: load_split(task, s, args.data_dir) for s in ("train", "dev", "test") if has_split(task, s, args.data_dir)}
    model, tokenizer, device = models.load(args.model, "cpu", "float32")
    tables = build_prompt_tables(splits, template, task["sizes"], config.get("seed", 0), tokenizer)
    demos = tables["candidates"]["demonstration"].to_list()
    quality = score_quality(model, tokenizer, template, tables["candidates"], tables["quality_queries"], device, 2048,
                            kind=task["kind"], progress=False)
    if isinstance(quality, tuple):  # a per-candidate and a per-query table
        quality = quality[0]
    lenses = {}
    with tempfile.TemporaryDirectory() as tmp:
        for name, table in (("quality queries (leaky)", "quality_queries"), ("probe queries", "probe_queries")):
            queries = tables[table]
            chosen = queries["query"].gather(balanced_head(queries["label"].to_list(), n_queries)).to_list()
            path = Path(tmp) / f"{table}.zarr"
            dump_activations(model, tokenizer, demos, path, args.site, device, "float32", mask="query",
                             batch_tokens=2048, queries=chosen, instruction=template.instruction,
                             separator=template.separator)
            lenses[name] = compute_features(open_store(path), skip_first_token=True)
    n_layers = int(lenses["probe queries"]["layer"].max()) + 1
    late = range(n_layers - n_layers // 3, n_layers)
    print(f"{args.task}: {len(demos)} candidates x {len(tables['quality_queries'])} quality queries; `query` store "
          f"({args.site}, {n_queries} queries per candidate); |rho| of any moment or massive feature with quality\n")
    print("| queries the lens runs | metric | max \\|rho\\|, all layers (feature, layer) | max \\|rho\\|, last third of layers |")
    print("|---|---|---|---|")
    for metric in METRICS:
        leaky = rhos(lenses["quality queries (leaky)"], quality, metric)
        top = max(leaky, key=lambda k: abs(leaky[k]))
        for name, features in lenses.items():
            table = rhos(features, quality, metric)
            best = max(table, key=lambda k: abs(table[k]))
            late_best = max((abs(v) for (f, layer), v in table.items() if layer in late), default=float("nan"))
            print(f"| {name} | {metric} | {abs(table[best]):.2f} ({best[0]}, {best[1]}) | {late_best:.2f} |")
        probe = rhos(lenses["probe queries"], quality, metric)
        print(f"| leaky lens's top ({top[0]}, layer {top[1]}) | {metric} | leaky {leaky[top]:+.2f}, "
              f"probe {probe.get(top, float('nan')):+.2f} | |")


if __name__ == "__main__":
    main()
