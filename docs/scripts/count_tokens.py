"""Token counts behind docs/cluster.md: what each stage of a config stores and runs.

Draws each task's candidates and quality queries exactly as build_prompts does (same
records, templates, seed and tokenisation rule), then asks the masking strategies' own
planners how many tokens each dump stores and how many padded tokens its forwards run,
and counts the tokens score_quality runs. Nothing here loads a model.

    python docs/scripts/count_tokens.py --config config/paper.yaml --data-dir ../shared/data \\
        --tokenizer resources/models/smollm2-135m

--tokenizer is a model or tokenizer folder, a tokenizer.json file, or a Qwen `.tiktoken`
rank file (needs the `tiktoken` package).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from types import SimpleNamespace

import polars as pl
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "workflow"))

from demoscope.activations import masks  # noqa: E402
from demoscope.data.prompts import build_prompt_tables  # noqa: E402
from demoscope.quality.oneshot import encode_prompts  # noqa: E402
from demoscope.data.sampling import balanced_head  # noqa: E402
from demoscope.data.tasks import generation_settings, has_split, load_split  # noqa: E402
from demoscope.data.templates import Template  # noqa: E402
from demoscope.lm.tokens import encode_text  # noqa: E402

QWEN_PATTERN = (
    r"""(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"""
)


class TiktokenAdapter:
    """The slice of a Hugging Face tokenizer that demoscope's token counting uses."""

    pad_token_id = 0

    def __init__(self, path: str):
        import base64

        import tiktoken

        ranks = {}
        for line in Path(path).read_bytes().splitlines():
            if line:
                token, rank = line.split()
                ranks[base64.b64decode(token)] = int(rank)
        self.encoding = tiktoken.Encoding(name=Path(path).stem, pat_str=QWEN_PATTERN, mergeable_ranks=ranks, special_tokens={})

    is_fast = True  # offsets, for the prompt builder, come from tiktoken's decode_with_offsets

    def __call__(self, text, add_special_tokens: bool = True, return_offsets_mapping: bool = False,
                 return_special_tokens_mask: bool = False):
        # Qwen2.5 adds no BOS, so special tokens change nothing.
        if isinstance(text, str):
            return SimpleNamespace(input_ids=self.encoding.encode_ordinary(text))
        ids = [self.encoding.encode_ordinary(t) for t in text]
        out = {"input_ids": ids, "special_tokens_mask": [[0] * len(row) for row in ids]}
        if return_offsets_mapping:
            out["offset_mapping"] = []
            for t, row in zip(text, ids):
                starts = self.encoding.decode_with_offsets(row)[1]
                out["offset_mapping"].append(list(zip(starts, starts[1:] + [len(t)])))
        return out


def load_tokenizer(spec: str):
    if spec.endswith(".tiktoken"):
        return TiktokenAdapter(spec)
    if spec.endswith(".json"):
        from transformers import PreTrainedTokenizerFast

        tokenizer = PreTrainedTokenizerFast(tokenizer_file=spec)
    else:
        from transformers import AutoTokenizer

        tokenizer = AutoTokenizer.from_pretrained(spec)
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token_id = 0
    return tokenizer


def padded(plan) -> int:
    total = 0
    for batch in plan.batches:
        total += batch.input_ids.numel()
        if batch.prefix is not None:
            total += batch.prefix["input_ids"].numel()
    return total


def count_task(task: dict, data_dir: str, seed: int, n_queries: int, tokenizer, batch_tokens: int) -> dict:
    template = Template.from_config(task.get("template"))
    splits = {s: load_split(task, s, data_dir) for s in ("train", "dev", "test") if has_split(task, s, data_dir)}
    tables = build_prompt_tables(splits, template, task["sizes"], seed, tokenizer)
    demos = tables["candidates"]["demonstration"].to_list()
    quality, probes = tables["quality_queries"], tables["probe_queries"]
    chosen = balanced_head(probes["label"].to_list(), n_queries)
    context = {
        "instruction": template.instruction,
        "separator": template.separator,
        "queries": probes["query"].gather(chosen).to_list(),
    }
    out = {"candidates": len(demos), "quality_queries": quality.height, "dumps": {}}
    out["mean_demo_tokens"] = sum(len(encode_text(tokenizer, d, first=True)) for d in demos) / len(demos)
    for mask in masks.MASKS:
        plan = masks.plan(mask, demos, tokenizer, batch_tokens, dtype=None, **context) if mask in (
            "causal", "instruction", "query") else None
        if plan is None:  # bidirectional and packed store exactly the causal tokens
            plan = masks.plan("causal", demos, tokenizer, batch_tokens)
            stored = sum(len(s) for s in plan.segments)
            forward = padded(plan) if mask == "bidirectional" else stored
        else:
            stored, forward = sum(len(s) for s in plan.segments), padded(plan)
        out["dumps"][mask] = {"stored_tokens": stored, "forward_tokens": forward}
    # score_quality: each candidate's prefix once, then every quality query after it, then
    # every option token after the first (the first is predicted by the query's last position).
    generation = task.get("kind") == "generation"
    if generation:
        # The gold solution is the one option whose log-prob is scored.
        quality = quality.with_columns(options=quality["answer"].map_elements(lambda a: [a], return_dtype=pl.List(pl.String)))
    prefix_ids, q_ids, o_ids = encode_prompts(tokenizer, template, [[d] for d in demos], quality)
    prefixes = [len(p) for p in prefix_ids]
    n = len(demos)
    out["score"] = {
        "prefix_tokens": sum(prefixes),
        "query_tokens": n * sum(len(q) for q in q_ids),
        "option_tail_tokens": n * sum(len(o) - 1 for opts in o_ids for o in opts),
        "mean_prefix_tokens": sum(prefixes) / n,
        "mean_query_tokens": sum(len(q) for q in q_ids) / len(q_ids),
    }
    if generation:
        # Greedy decoding runs the prefixes and queries once more (the gold solution is scored
        # in a second pass), then one token per row and step: at most max_new_tokens, about
        # the gold solution's length when the model stops where the gold does.
        steps = generation_settings(task)["max_new_tokens"]
        out["score"]["prefix_tokens"] *= 2
        out["score"]["query_tokens"] *= 2
        out["score"]["decode_tokens_max"] = n * len(q_ids) * steps
        out["score"]["decode_tokens_gold_length"] = n * sum(min(len(o[0]), steps) for o in o_ids)
        out["score"]["mean_gold_tokens"] = sum(len(o[0]) for o in o_ids) / len(o_ids)
        # Decoding steps: each batch generate() forms decodes until its last row stops, at
        # most max_new_tokens steps. The batches are generate()'s own, with the model left out.
        prefix_ids = [encode_text(tokenizer, prefix_text + d, first=True) for d in demos]
        out["score"]["decode_batches"] = generation_batches(prefix_ids, q_ids, batch_tokens)
        out["score"]["decode_steps_max"] = out["score"]["decode_batches"] * steps
    return out


def generation_batches(prefixes: list[list[int]], queries: list[list[int]], batch_tokens: int) -> int:
    """How many batches `generation.generate` decodes for every prefix x query."""
    from demoscope.lm import generation

    batches = []

    def record(model, tokenizer, row_prefixes, *args):
        batches.append(len(row_prefixes))
        return [""] * len(row_prefixes)

    no_model = SimpleNamespace(generation_config=None)
    no_tokenizer = SimpleNamespace(eos_token_id=None)
    real, generation._generate_batch = generation._generate_batch, record
    try:
        generation.generate(no_model, no_tokenizer, prefixes, queries, None, "cpu", 1, [], batch_tokens, progress=False)
    finally:
        generation._generate_batch = real
    return len(batches)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", default="config/paper.yaml")
    parser.add_argument("--data-dir", required=True)
    parser.add_argument("--tokenizer", required=True)
    parser.add_argument("--tasks", nargs="*", help="default: every task of the config")
    args = parser.parse_args()
    config = yaml.safe_load(Path(args.config).read_text())
    tokenizer = load_tokenizer(args.tokenizer)
    result = {}
    for name in args.tasks or list(config["tasks"]):
        result[name] = count_task(
            config["tasks"][name], args.data_dir, config.get("seed", 0), config["query_mask"]["queries"], tokenizer,
            config["compute"]["batch_tokens"],
        )
        print(f"{name}: {json.dumps(result[name])}", file=sys.stderr)
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
