"""The prompt builder is exact to the token: every store that places a demonstration in a prompt
holds the very token ids, and the very activations, of the scored 1-shot prompt's slice.

Run with byte-level BPE tokenizers that merge "\\n\\n" (a tiny one trained here, and the
embedded SmolLM2's where its package is installed): they tokenise the separator differently
at the end of a string than before a word, which is what made the old `instruction` store
read other tokens than the scored prompt.
"""

import importlib.util
from pathlib import Path

import numpy as np
import polars as pl
import pytest
import torch

from demoscope.activations import store
from demoscope.activations.capture import capture
from demoscope.activations.dump import dump_activations
from demoscope.lm.models import EMBEDDED_GGUF, EMBEDDED_PACKAGE
from demoscope.lm.promptbuilder import PromptBuilder, PromptError
from demoscope.quality.oneshot import encode_prompts
from demoscope.data.templates import Template

INSTRUCTION = "Classify the sentiment of each movie review as positive or negative."
TEMPLATE = Template.from_config({"instruction": INSTRUCTION})
DEMOS = ["Review: good film \nSentiment: positive", "Review: dull plot scene \nSentiment: negative",
         "Review: love it.\n\nSentiment: positive"]
QUERIES = ["Review: hate music \nSentiment:", "Review: bright story \nSentiment:"]


def merging_tokenizer(path: Path):
    """A byte-level BPE whose vocabulary has the token "\\n\\n"."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    corpus = [INSTRUCTION + "\n\n" + d + "\n\n" + q for d in DEMOS for q in QUERIES] * 20 + ["\n\n"] * 50
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=420, special_tokens=["<pad>", "<s>"],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator(corpus, trainer)
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, pad_token="<pad>", bos_token="<s>", eos_token="<s>")
    fast.save_pretrained(path)
    return fast


def embedded_tokenizer():
    spec = importlib.util.find_spec(EMBEDDED_PACKAGE)
    gguf = Path(spec.submodule_search_locations[0]) / EMBEDDED_GGUF if spec and spec.submodule_search_locations else None
    if gguf is None or not gguf.exists():
        return None
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    if tok.pad_token_id is None:
        tok.pad_token = tok.eos_token
    return tok


def random_model(vocab: int):
    from transformers import AutoModelForCausalLM, LlamaConfig

    torch.manual_seed(0)
    config = LlamaConfig(vocab_size=vocab, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=512)
    return AutoModelForCausalLM.from_config(config).eval()


@pytest.fixture(scope="module", params=["trained", "embedded"])
def setup(request, tmp_path_factory):
    if request.param == "trained":
        tok = merging_tokenizer(tmp_path_factory.mktemp("bpe"))
        assert tok.convert_ids_to_tokens(tok("x.\n\n").input_ids)[-1] == "ĊĊ", "the test tokenizer must merge \\n\\n"
    else:
        tok = embedded_tokenizer()
        if tok is None:
            pytest.skip(f"the embedded model's package {EMBEDDED_PACKAGE} is not installed")
    return tok, random_model(len(tok))


def full_prompt(demo: str, query: str) -> str:
    return INSTRUCTION + "\n\n" + demo + "\n\n" + query


def run(model, ids: list[int]) -> np.ndarray:
    with capture(model, "mlp_out") as captured, torch.no_grad():
        model.model(input_ids=torch.tensor([ids]))
    return np.stack([captured[layer][0].numpy() for layer in sorted(captured)])


def test_the_old_rule_differs_where_the_builder_does_not(setup):
    tok, _ = setup
    head = tok(INSTRUCTION + "\n\n").input_ids
    prompt = tok(full_prompt(DEMOS[0], QUERIES[0])).input_ids
    assert prompt[: len(head)] != head  # "\n\n" at the end of a string is one token, not two
    built = PromptBuilder(tok, TEMPLATE).build([DEMOS[0]], QUERIES[0])
    assert built.ids == prompt


def test_scored_prompt_is_the_joint_tokenisation(setup):
    tok, _ = setup
    queries = pl.DataFrame({"query": QUERIES, "options": [["negative", "positive"]] * 2})
    prefixes, q_ids, o_ids = encode_prompts(tok, TEMPLATE, [[d] for d in DEMOS], queries)
    for p, demo in enumerate(DEMOS):
        for q, query in enumerate(QUERIES):
            assert prefixes[p] + q_ids[q] == tok(full_prompt(demo, query)).input_ids
            for k, option in enumerate(["negative", "positive"]):
                assert prefixes[p] + q_ids[q] + o_ids[q][k] == tok(full_prompt(demo, query) + " " + option).input_ids


def test_instruction_and_query_segments_are_slices_of_the_scored_prompt(setup, tmp_path):
    tok, model = setup
    common = dict(site="mlp_out", device="cpu", store_dtype="float32", batch_tokens=200, chunk_tokens=8)
    dump_activations(model, tok, DEMOS, tmp_path / "i.zarr", mask="instruction", instruction=INSTRUCTION,
                     separator="\n\n", **common)
    dump_activations(model, tok, DEMOS, tmp_path / "q.zarr", mask="query", queries=QUERIES, instruction=INSTRUCTION,
                     separator="\n\n", **common)
    inst, query = store.open_store(tmp_path / "i.zarr"), store.open_store(tmp_path / "q.zarr")
    builder = PromptBuilder(tok, TEMPLATE)
    for c, demo in enumerate(DEMOS):
        for q, text in enumerate(QUERIES):
            ids = tok(full_prompt(demo, text)).input_ids
            acts = run(model, ids)
            built = builder.build([demo], text)
            assert built.ids == ids
            d0, d1 = built.span("demonstration")
            q0, q1 = built.span("query")
            assert tok.decode(ids[d0:d1]) == demo and tok.decode(ids[q0:q1]) == text
            seg = c * len(QUERIES) + q
            got = query.root["token_ids"][query.offsets[seg]: query.offsets[seg + 1]].tolist()
            assert got == ids[q0:q1]
            for layer in range(2):
                np.testing.assert_allclose(query.candidate(layer, seg), acts[layer, q0:q1], atol=1e-5)
            got = inst.root["token_ids"][inst.offsets[c]: inst.offsets[c + 1]].tolist()
            assert got == ids[d0:d1]
            for layer in range(2):
                np.testing.assert_allclose(inst.candidate(layer, c), acts[layer, d0:d1], atol=1e-5)


def test_a_token_across_the_prefix_boundary_is_refused(setup):
    tok, _ = setup
    # A demonstration ending in "\n" runs into the separator "\n\n": "\n\n\n" is tokenised as a
    # whole, so no cached prefix can be the prompt's own tokens, and the builder says so
    # instead of scoring other tokens.
    builder = PromptBuilder(tok, TEMPLATE)
    with pytest.raises(PromptError, match="crosses the boundary"):
        builder.split([["Review: good film \nSentiment: positive\n"]], ["Review: bad \nSentiment:"])
