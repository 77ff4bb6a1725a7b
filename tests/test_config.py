"""Bad config stops the run before any job, with a message naming the key and the allowed values."""

import copy

import pytest
import yaml

from demoscope.config import ConfigError, check_config

from conftest import REPO, default_config, make_workspace, snakemake

SCHEMA = REPO / "workflow" / "schemas" / "config.schema.yaml"
DEFAULT = default_config()


# A plain-text source: `LABEL:detail question` lines, split by a pattern with named groups.
QUESTIONS = {"dir": "questions", "format": "fields", "pattern": r"(?P<label>[A-Z]+):(?P<detail>\S+) (?P<question>.*)",
             "input": "Question: {question}\nType:", "label_words": ["DESC", "ENTY", "HUM", "LOC", "NUM"]}


def edited(change) -> dict:
    config = copy.deepcopy(DEFAULT)
    change(config)
    return config


def test_default_config_is_valid():
    """config/config.yaml alone (the default run) and with config/breadth.yaml merged over it."""
    check_config(default_config(breadth=False), SCHEMA)
    check_config(copy.deepcopy(DEFAULT), SCHEMA)
    assert list(default_config(breadth=False)["tasks"]) == ["sst2"]
    assert list(DEFAULT["tasks"]) == ["sst2", "arc_challenge", "gsm8k"]


@pytest.mark.parametrize(
    "change, message",
    [
        (lambda c: c.update(seeed=1), "(top level): unknown key 'seeed'; allowed keys: "),
        (lambda c: c["dumps"].update(causl=["mlp_out"]), "dumps: 'causl' is not allowed; allowed: causal, instruction, bidirectional, packed, query"),
        (lambda c: c["dumps"].update(causal=["mlp"]), "dumps.causal.0: 'mlp' is not allowed; allowed: mlp_out, resid"),
        (lambda c: c["report"].update(quality_metrics=["acc"]), "report.quality_metrics.0: 'acc' is not allowed; allowed: accuracy, gold_logprob"),
        (lambda c: c["tasks"]["sst2"].update(kind="clasification"), "tasks.sst2.kind: 'clasification' is not allowed; allowed: classification, multiple_choice"),
        (lambda c: c["tasks"]["sst2"]["sizes"].pop("candidates"), "tasks.sst2.sizes: 'candidates' is a required property"),
        (lambda c: c["tasks"]["sst2"]["template"].update(querry="{input}"), "tasks.sst2.template: unknown key 'querry'; allowed keys: answer_prefix, demonstration"),
        (lambda c: c["models"].update({"bad/name": {"source": "x"}}), "models: 'bad/name' is not an allowed name"),
        (lambda c: c["tasks"]["gsm8k"]["generation"].update(max_tokens=5), "tasks.gsm8k.generation: unknown key 'max_tokens'; allowed keys: max_new_tokens, min_new_tokens, stop"),
        (lambda c: c["tasks"]["gsm8k"]["generation"].update(max_new_tokens=0), "tasks.gsm8k.generation.max_new_tokens: 0 is less than the minimum of 1"),
        (lambda c: c["tasks"]["gsm8k"]["generation"].update(stop=["\n\n", ""]), "tasks.gsm8k.generation.stop.1: '' should be non-empty"),
        (lambda c: c["tasks"]["gsm8k"]["hub"]["splits"].pop("test"), "tasks.gsm8k.hub.splits: 'test' is a required property"),
        (lambda c: c["sae"].update(stores=[["causl", "mlp_out"]]), "sae.stores.0.0: 'causl' is not allowed; allowed: causal, instruction"),
        (lambda c: c["sae"].update(k=0), "sae.k: 0 is less than the minimum of 1"),
        (lambda c: c["sae"].update(layer=[1]), "sae: unknown key 'layer'; allowed keys: auxk, batch_tokens"),
    ],
)
def test_schema_errors_name_key_and_allowed_values(change, message):
    with pytest.raises(ConfigError) as err:
        check_config(edited(change), SCHEMA)
    assert message in str(err.value)
    if message.startswith("(top level)"):  # the list names the real keys, whatever keys exist by now
        assert ", seed, " in str(err.value) and ", tasks" in str(err.value)


@pytest.mark.parametrize(
    "change, message",
    [
        (lambda c: c["tasks"]["sst2"].pop("hub"), "tasks.sst2: has no `hub` source (data_dir is null, so tasks read the hub)"),
        (lambda c: (c.update(data_dir="/data"), c["tasks"]["arc_challenge"].pop("local")), "tasks.arc_challenge: has no `local` source (data_dir is set"),
        (lambda c: c["tasks"]["sst2"]["template"].update(demonstration="{input} {label}"), "tasks.sst2.template.demonstration: unknown placeholder {label}; allowed: {answer}, {answer_prefix}, {input}"),
        (lambda c: c["tasks"]["sst2"]["template"].update(demonstration="{input}"), "tasks.sst2.template.demonstration: must contain {answer}"),
        (lambda c: c["tasks"]["sst2"]["template"].update(query="Review:"), "tasks.sst2.template.query: must contain {input}"),
        # The default run dumps no `query` store (config/paper.yaml does): these add one.
        (lambda c: (c["dumps"].update(query=["mlp_out"]), c["query_mask"].update(queries=50)),
         "query_mask.queries: 50 is larger than tasks.sst2.sizes.probe_queries (4)"),
        (lambda c: (c["dumps"].update(query=["mlp_out"]), c["query_mask"].update(queries=50, source="quality_queries_leaky"), c["tasks"]["sst2"]["sizes"].update(quality_queries=32)),
         "query_mask.queries: 50 is larger than tasks.sst2.sizes.quality_queries (32)"),
        (lambda c: c["tasks"]["arc_challenge"]["template"].pop("instruction"), "tasks.arc_challenge.template.instruction: the `instruction` mask in dumps needs an instruction text"),
        (lambda c: c["selection"].update(k=50), "selection.k: 50 is larger than tasks.arc_challenge.sizes.candidates (32)"),
        (lambda c: c["selection"].update(strategies=["mdl"], mdl={"candidates": 3}), "selection.mdl.candidates: 3 is smaller than selection.k (4)"),
        (lambda c: c["selection"].update(strategies=["dpp"], dpp={"candidates": 2, "scale": 0.1}), "selection.dpp.candidates: 2 is smaller than selection.k (4)"),
        (lambda c: (c["dumps"].update(causal=["mlp_out"]), c["selection"]["activation"].append({"feature": "top1", "layer": "best", "mask": "causal", "site": "resid"})), "selection.activation.1: causal/resid is not dumped (add it under `dumps`)"),
        (lambda c: c["selection"].update(best_layer_metric="accuracy_norm"), "selection.activation.0: layer 'best' ranks layers by |rho| with selection.best_layer_metric (accuracy_norm), which is not in report.quality_metrics (accuracy, gold_logprob)"),
        (lambda c: c["selection"]["activation"].append(dict(c["selection"]["activation"][0])), "selection.activation.1: repeats an earlier entry"),
        (lambda c: c["selection"]["activation"].append({**{"feature": "top1", "layer": "best", "mask": "causal", "site": "resid"}, "lens": "sae"}), "selection.activation.1: the SAE lens does not read causal/resid (add it to sae.stores)"),
        (lambda c: (c["sae"].update(tasks=["sst2"]), c["selection"]["activation"][0].update(lens="sae")), "selection.activation.0: the SAE lens does not run on arc_challenge, gsm8k (sae.tasks)"),
        (lambda c: c["tasks"]["gsm8k"].update(kind="multiple_choice"), "tasks.gsm8k.local.format: 'gsm8k' records have no options; use kind `generation`"),
        (lambda c: c["tasks"]["sst2"].update(kind="generation"), "tasks.sst2.hub.format: 'fields' has no numeric answers to generate; kind `generation` reads gsm8k"),
        (lambda c: c["tasks"]["sst2"].update(generation={"max_new_tokens": 4}), "tasks.sst2.generation: only a task of kind `generation` generates (this one is classification)"),
        (lambda c: c["sae"].update(stores=[["packed", "resid"]]), "sae.stores.0: [packed, resid] is not dumped; add resid to dumps.packed or drop the pair"),
        (lambda c: c["sae"].update(tasks=["boolq"]), "sae.tasks: 'boolq' is not a task of this config"),
        (lambda c: c["sae"].update(pretrained={"llama": "/saes"}), "sae.pretrained: 'llama' is not a model of this config"),
        (lambda c: c["sae"].update(pool=8, held_out=0.01), "sae.held_out: 0.01 of sae.pool 8 records leaves no held-out or no training record"),
        (lambda c: c["quality"].update(definition="condacc", condacc={"k": 36, "sets": 2}), "quality.condacc.k: 36 demonstrations per prompt, but tasks.arc_challenge has 32 candidates"),
        (lambda c: c["task_vector"].update(tasks=["boolq"]), "task_vector.tasks: 'boolq' is not a task of this config"),
        (lambda c: c["attention"].update(tasks=["sst2", "nope"]), "attention.tasks: 'nope' is not a task of this config"),
        (lambda c: (c["attention"].update(tasks=["sst2"]), c["tasks"]["sst2"]["sizes"].update(probe_queries=0)), "tasks.sst2.sizes.probe_queries: 0, but attention.tasks runs the attention lens on sst2"),
        (lambda c: c["tasks"]["sst2"]["hub"].pop("input"), "tasks.sst2.hub.input: format `fields` needs an input template over the record's fields"),
        (lambda c: c["tasks"]["sst2"]["hub"].pop("label_words"), "tasks.sst2.hub.label_words: format `fields` needs the label words"),
        (lambda c: c["tasks"]["sst2"]["hub"].update(input="Review: {sentence\nSentiment:"), "tasks.sst2.hub.input: not a valid template"),
        (lambda c: c["tasks"]["sst2"].update(local=dict(QUESTIONS, input="Q: {questoin}")), "tasks.sst2.local.input: placeholder {questoin} is not a group of tasks.sst2.local.pattern (its groups: detail, label, question)"),
        (lambda c: c["tasks"]["sst2"].update(local=dict(QUESTIONS, label="type")), "tasks.sst2.local.label: 'type' is not a group of tasks.sst2.local.pattern"),
        (lambda c: c["tasks"]["sst2"].update(local=dict(QUESTIONS, pattern="([A-Z]+):(.*)")), "tasks.sst2.local.pattern: has no named groups"),
        (lambda c: c["tasks"]["sst2"].update(local=dict(QUESTIONS, pattern="(?P<label>[A-Z+:(?P<question>.*)")), "tasks.sst2.local.pattern: not a valid regular expression"),
    ],
)
def test_semantic_errors_name_the_key(change, message):
    with pytest.raises(ConfigError) as err:
        check_config(edited(change), SCHEMA)
    assert message in str(err.value)


def test_a_bad_key_stops_snakemake_before_any_job(tmp_path):
    workdir = make_workspace(tmp_path, edited(lambda c: c["dumps"].update(causal=["mlp"])))
    done = snakemake(workdir, "-n", check=False)
    assert done.returncode != 0
    assert "dumps.causal.0: 'mlp' is not allowed; allowed: mlp_out, resid" in done.stdout + done.stderr
    assert not (workdir / "results").exists()


def test_a_fields_source_without_its_keys_is_named_before_any_job():
    config = edited(lambda c: c["tasks"]["sst2"].update(local={"dir": "x", "format": "fields"}))
    with pytest.raises(ConfigError) as err:
        check_config(config, SCHEMA)
    assert "tasks.sst2.local.input: format `fields` needs an input template" in str(err.value)
    assert "tasks.sst2.local.label_words: format `fields` needs the label words" in str(err.value)
    # A mapping of raw labels to words is a valid `label_words`.
    check_config(edited(lambda c: c["tasks"]["sst2"].update(local=dict(QUESTIONS, label_words={"HUM": "human", "LOC": "place"}))), SCHEMA)


@pytest.mark.slow
def test_a_typo_in_a_csv_tasks_input_stops_snakemake_before_any_job(tmp_path):
    """A placeholder that is no column of the task's file is named when the workflow starts,
    with the file and the columns it has."""
    data = tmp_path / "data" / "reviews"
    data.mkdir(parents=True)
    for split in ("train", "test"):
        (data / f"{split}.csv").write_text("review,stars\nfine film,pos\ndull plot,neg\n")

    def change(config):
        config["data_dir"] = str(tmp_path / "data")
        config["tasks"] = {"reviews": {"kind": "classification", "sizes": {"candidates": 4, "quality_queries": 2},
                                       "template": {"instruction": "Classify each review."},
                                       "local": {"dir": "reviews", "format": "fields", "input": "Review: {reveiw}",
                                                 "label": "stars", "label_words": ["neg", "pos"]}}}
        config["sae"]["tasks"] = None

    workdir = make_workspace(tmp_path / "ws", edited(change))
    done = snakemake(workdir, "-n", check=False)
    assert done.returncode != 0
    assert (f"tasks.reviews.local.input: placeholder {{reveiw}} is not a field of {data / 'train.csv'} "
            f"(its fields: review, stars)") in done.stdout + done.stderr
    assert not (workdir / "results").exists()


def test_generation_settings_default_to_the_separator():
    from demoscope.data.tasks import generation_settings

    task = copy.deepcopy(DEFAULT["tasks"]["gsm8k"])
    # The default config's own block is taken as written.
    assert generation_settings(task) == task["generation"]
    task.pop("generation")
    task["template"]["separator"] = "\n###\n"
    assert generation_settings(task) == {"max_new_tokens": 128, "min_new_tokens": 0, "stop": ["\n###\n"]}
