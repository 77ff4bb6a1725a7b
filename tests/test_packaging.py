"""What the workflow promises outside its own runs: the catalog's usage file, the transformers
range it is tested on, and job logs free of deprecation warnings from demoscope's own calls."""

import logging
import re
import warnings

import polars as pl
import pytest
import yaml

from conftest import REPO


def test_the_catalog_file_says_what_the_workflow_does():
    catalog = yaml.safe_load((REPO / ".snakemake-workflow-catalog.yml").read_text())
    usage = catalog["usage"]
    assert set(usage["mandatory-flags"]) == {"desc", "flags"} and usage["mandatory-flags"]["desc"].strip()
    deployment = usage["software-stack-deployment"]
    assert set(deployment) == {"conda", "apptainer", "apptainer+conda", "report"}
    assert all(isinstance(v, bool) for v in deployment.values())
    # conda: every rule names the environment file, which exists.
    rules = re.split(r"\n(?=rule \w+:)", "\n".join(p.read_text() for p in sorted((REPO / "workflow" / "rules").glob("*.smk"))))
    rules = [r for r in rules if r.startswith("rule ")]
    assert len(rules) > 20
    assert deployment["conda"] == all('conda:\n        "../../envs/demoscope.yaml"' in r for r in rules)
    assert (REPO / "envs" / "demoscope.yaml").exists()
    assert not deployment["apptainer"] and "container:" not in "".join(rules)  # no image to run in
    # report: the Snakefile declares one, and config/README.md is the catalog's configuration page.
    assert usage["report"] is deployment["report"] is ("\nreport:" in (REPO / "Snakefile").read_text())
    assert (REPO / "config" / "README.md").exists()


def test_transformers_is_pinned_to_the_tested_range_and_installed_within_it():
    import tomllib

    import transformers
    from packaging.requirements import Requirement
    from packaging.version import Version

    deps = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["dependencies"]
    (pin,) = [Requirement(d) for d in deps if Requirement(d).name == "transformers"]
    assert {s.operator for s in pin.specifier} == {">=", "<"}  # a lower and an upper bound
    assert Version(transformers.__version__) in pin.specifier
    conda = yaml.safe_load((REPO / "envs" / "demoscope.yaml").read_text())
    (pip,) = [d["pip"] for d in conda["dependencies"] if isinstance(d, dict)]
    assert [Requirement(d.split("#")[0]).specifier for d in pip if d.startswith("transformers")] == [pin.specifier]


@pytest.mark.parametrize("arch", ["tiny_llama", "tiny_qwen2"])
def test_scoring_generation_dumps_and_zero_shot_raise_no_deprecation_warning(arch, request, tmp_path):
    """Every model call demoscope makes, with deprecation warnings as errors: transformers warns
    through `warnings` (a renamed keyword) and through its logger (a renamed output field)."""
    from demoscope.lm import models
    from demoscope.activations.dump import dump_activations
    from demoscope.lm.embeddings import mean_pooled
    from demoscope.lm.generation import generate
    from demoscope.lm.scoring import score_options
    from demoscope.data.templates import Template
    from demoscope.lm.zeroshot import zero_shot_uncertainty

    model, tok, _ = models.load(request.getfixturevalue(arch), "cpu", "float32")
    said = []
    handler = logging.Handler()
    handler.emit = lambda record: said.append(record.getMessage())
    logging.getLogger("transformers").addHandler(handler)
    logging.Logger.warning_once.cache_clear()  # a message another test drew out is said again
    prefixes = [tok(t).input_ids for t in ["Review: good film \nSentiment: positive", "Question: which?\nAnswer: gas"]]
    queries = [tok(t, add_special_tokens=False).input_ids for t in ["\n\nReview: dull", "\n\nQuestion: rock?\nAnswer:"]]
    one_token = [[tok(" negative", add_special_tokens=False).input_ids, tok(" positive", add_special_tokens=False).input_ids]] * 2
    many_tokens = [[tok(" liquid rock sun", add_special_tokens=False).input_ids]] * 2
    texts = ["Review: good film", "Question: which rock?\nAnswer: gas"]
    masks = {"causal": {}, "instruction": {"instruction": "Classify it.", "separator": "\n\n"}, "bidirectional": {},
             "packed": {}, "query": {"queries": ["\n\nReview: dull", "\n\nReview: fine"], "separator": "\n\n"}}
    template = Template.from_config({"instruction": "Classify each review.", "demonstration": "{input} {answer}", "query": "{input}"})
    candidates = pl.DataFrame({"cand_id": [0, 1], "input": ["Review: good", "Review: bad"],
                               "options": [["negative", "positive"]] * 2, "label": ["positive", "negative"]})
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", DeprecationWarning)
            warnings.simplefilter("error", FutureWarning)
            for options in (one_token, many_tokens):
                score_options(model, prefixes, queries, options, "cpu", tok.pad_token_id, batch_tokens=64, progress=False)
            generate(model, tok, prefixes, queries, None, "cpu", 4, ["\n\n"], 4096, progress=False)
            for mask, context in masks.items():
                dump_activations(model, tok, texts, str(tmp_path / f"{mask}.zarr"), "mlp_out", "cpu", "float32",
                                 mask=mask, batch_tokens=40, chunk_tokens=8, **context)
            for generation in (False, True):
                zero_shot_uncertainty(model, tok, template, candidates, "cpu", batch_tokens=64, generation=generation)
            mean_pooled(models.backbone(model), tok, texts, "cpu")
    finally:
        logging.getLogger("transformers").removeHandler(handler)
    assert not [message for message in said if "deprecat" in message.lower()]
