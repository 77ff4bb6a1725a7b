"""Shared fixtures: tiny task folders and tiny random-weight models built in seconds.

Nothing here reaches the network: tokenizers are trained in-process and
model weights are random.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
# Test this checkout's package even where another checkout is pip-installed in editable mode.
sys.path.insert(0, str(REPO / "workflow"))
SHARED_DATA = (REPO / ".." / "shared" / "data").resolve()

WORDS = (
    "good bad great awful fine dull bright film movie plot actor scene story music love hate "
    "what which how water rock gas liquid solid plants energy sun earth heat light sound"
).split()


def write_jsonl(path: Path, rows: list[dict]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))


def sentiment_rows(n: int, seed: int) -> list[dict]:
    import random

    rng = random.Random(seed)
    rows = []
    for i in range(n):
        label = ["negative", "positive"][i % 2]
        text = " ".join(rng.choice(WORDS) for _ in range(rng.randint(3, 9)))
        rows.append({"task": "sst2", "input": f"Review: {text} \nSentiment:", "output": label,
                     "options": ["negative", "positive"]})
    return rows


def mc_rows(n: int, seed: int, prefix: str) -> list[dict]:
    import random

    rng = random.Random(seed)
    rows = []
    for i in range(n):
        n_choices = [3, 4, 4, 5][i % 4]
        labels = "ABCDE"[:n_choices] if i % 3 else "12345"[:n_choices]
        choices = [{"text": " ".join(rng.choice(WORDS) for _ in range(rng.randint(1, 3))), "label": lab}
                   for lab in labels]
        stem = " ".join(rng.choice(WORDS) for _ in range(rng.randint(4, 10))) + "?"
        rows.append({"id": f"{prefix}-{i}", "question": {"stem": stem, "choices": choices},
                     "answerKey": labels[i % n_choices]})
    return rows


def gsm8k_rows(n: int, seed: int) -> list[dict]:
    """GSM8K as released: `question`, and an `answer` that works it out and ends in '#### N'."""
    import random

    rng = random.Random(seed)
    rows = []
    for _ in range(n):
        a, b = rng.randint(2, 40), rng.randint(2, 40)
        thing = rng.choice(WORDS)
        question = f"Tom has {a} {thing} and gets {b} more. How many {thing} does he have?"
        answer = f"He has {a} + {b} = <<{a}+{b}={a + b}>>{a + b} {thing}.\n#### {a + b:,}"
        rows.append({"question": question, "answer": answer})
    return rows


@pytest.fixture(scope="session")
def tiny_data(tmp_path_factory) -> Path:
    """A data_dir laid out like the offline data: sst2 (DataICL), arc_challenge (AI2) and
    gsm8k (train and test only, as released)."""
    root = tmp_path_factory.mktemp("data")
    for split, n, seed in (("train", 40, 1), ("dev", 20, 2), ("test", 20, 3)):
        write_jsonl(root / "sst2" / f"{split}.jsonl", sentiment_rows(n, seed))
        write_jsonl(root / "arc_challenge" / f"{split}.jsonl", mc_rows(n, seed, split))
        if split != "dev":
            write_jsonl(root / "gsm8k" / f"{split}.jsonl", gsm8k_rows(n, seed))
    return root


def train_tokenizer(path: Path) -> None:
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    corpus = [" ".join(WORDS)] * 4 + ["Review: Sentiment: negative positive Question: Answer: ? \n"] * 4
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=400, special_tokens=["<pad>", "<s>"], initial_alphabet=pre_tokenizers.ByteLevel.alphabet()
    )
    tok.train_from_iterator(corpus, trainer)
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, pad_token="<pad>", bos_token="<s>", eos_token="<s>")
    fast.save_pretrained(path)


def build_tiny_model(path: Path, arch: str, layers: int = 3) -> Path:
    import torch
    from transformers import AutoModelForCausalLM, Gemma3TextConfig, LlamaConfig, Qwen2Config

    common = dict(vocab_size=400, hidden_size=32, intermediate_size=64, num_hidden_layers=layers,
                  num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=512,
                  pad_token_id=0, bos_token_id=1, eos_token_id=1)
    if arch == "gemma3":  # Gemma-style attention: explicit head_dim, q/k norms, sliding-window layers
        config = Gemma3TextConfig(**common, head_dim=8, sliding_window=16)
    else:
        config = LlamaConfig(**common) if arch == "llama" else Qwen2Config(**common)
    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_config(config)
    model.save_pretrained(path)
    train_tokenizer(path)
    return path


@pytest.fixture(scope="session")
def tiny_llama(tmp_path_factory) -> Path:
    return build_tiny_model(tmp_path_factory.mktemp("tiny-llama"), "llama")


@pytest.fixture(scope="session")
def tiny_qwen2(tmp_path_factory) -> Path:
    return build_tiny_model(tmp_path_factory.mktemp("tiny-qwen2"), "qwen2")


@pytest.fixture(scope="session")
def tiny_gemma3(tmp_path_factory) -> Path:
    return build_tiny_model(tmp_path_factory.mktemp("tiny-gemma3"), "gemma3")


def make_workspace(root: Path, config: dict) -> Path:
    """A copy of the workflow with its own config, so a test may edit code without touching the repo.
    The profiles come along: Snakemake reads profiles/default by itself, as in a clone."""
    root.mkdir(parents=True, exist_ok=True)
    shutil.copy(REPO / "Snakefile", root / "Snakefile")
    shutil.copytree(REPO / "workflow", root / "workflow", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copytree(REPO / "envs", root / "envs")
    shutil.copytree(REPO / "profiles", root / "profiles")
    (root / "config").mkdir(exist_ok=True)
    (root / "config" / "config.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    return root


def snakemake(workdir: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "snakemake", "--cores", "2", *args]
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"}
    done = subprocess.run(cmd, cwd=workdir, capture_output=True, text=True, env=env)
    if check and done.returncode != 0:
        raise AssertionError(f"{' '.join(cmd)} failed:\n{done.stdout[-3000:]}\n{done.stderr[-6000:]}")
    return done


def default_config(breadth: bool = True) -> dict:
    """config/config.yaml, with config/breadth.yaml merged over it as Snakemake merges two
    --configfile files (the default run has SST-2 alone; the overlay adds ARC-Challenge and
    GSM8K, so that tests see every task kind)."""
    from snakemake.utils import update_config

    config = yaml.safe_load((REPO / "config" / "config.yaml").read_text())
    if breadth:
        update_config(config, yaml.safe_load((REPO / "config" / "breadth.yaml").read_text()))
    return config


def tiny_config(model_dir: Path, data_dir: Path, name: str = "tiny") -> dict:
    """The default config's tasks and templates with config/breadth.yaml's, a tiny model, and tiny sizes."""
    config = default_config()
    config["models"] = {name: {"source": str(model_dir)}}
    config["data_dir"] = str(data_dir)
    config["tasks"]["sst2"]["sizes"] = {"candidates": 10, "quality_queries": 4}
    config["tasks"]["arc_challenge"]["sizes"] = {"candidates": 8, "quality_queries": 4}
    # No test queries: the selection stage is off here (tests/test_selection_workflow.py runs it).
    config["tasks"]["gsm8k"]["sizes"] = {"candidates": 6, "quality_queries": 4, "test_queries": 0}
    config["tasks"]["gsm8k"]["generation"]["max_new_tokens"] = 8
    config["compute"]["batch_tokens"] = 256
    config["compute"]["chunk_tokens"] = 16
    # The default run leaves the `query` mask to config/paper.yaml for time; the tests keep it.
    config["dumps"]["query"] = ["mlp_out"]
    # Tiny SAEs on the tiny model's first and last layers, from 20 of the 40 train records.
    # Every task of a tiny config, so that a test may keep only some of them.
    config["sae"].update(tasks=None, layers=[0, 2], expansion=2, k=4, pool=20, held_out=0.2, steps=20, batch_tokens=32, top_latents=3)
    # The task-vector pool and the attention lens's calibration records come out of the same 40
    # train records, besides the candidates (both lenses are off unless a test turns them on).
    config["task_vector"]["pool"] = 8
    config["attention"].update(calibration=4)
    return config
