# Beyond the study (docs/lenses.md): CondAcc quality (Chang & Jia 2023) and the task-vector lens.


# Each candidate's mean accuracy over random k-shot prompts that contain it; with
# quality.definition: condacc every lens is correlated against this table (quality_table).
rule condacc_quality:
    input:
        model=model_dir,
        candidates="results/{model}/{task}/prompts/candidates.parquet",
        queries="results/{model}/{task}/prompts/quality_queries.parquet",
    output:
        quality="results/{model}/{task}/quality_condacc.parquet",
        prompts="results/{model}/{task}/condacc_prompts.parquet",
    log:
        "results/logs/condacc_quality/{model}/{task}.log",
    priority: 1
    conda:
        "../../envs/demoscope.yaml"
    threads: COMPUTE["threads"]
    resources:
        gpu=COMPUTE["gpu"],
    params:
        dtype=lambda wc: config["models"][wc.model].get("dtype", COMPUTE["dtype"]),
        template=template_config,
        kind=lambda wc: config["tasks"][wc.task]["kind"],
        generation=generation_config,
        condacc=canonical(QUALITY["condacc"]),
        seed=config["seed"],
        code=code_hash(
            "models",
            "condacc",
            "evaluation",
            "scoring",
            "quality",
            "templates",
            "tokens",
            "generation",
            "answers",
        ),
    script:
        "../scripts/condacc_quality.py"


rule task_vector_pool:
    input:
        model=model_dir,
        data=task_data,
        candidates="results/{model}/{task}/prompts/candidates.parquet",
    output:
        "results/{model}/{task}/prompts/task_vector_pool.parquet",
    log:
        "results/logs/task_vector_pool/{model}/{task}.log",
    conda:
        "../../envs/demoscope.yaml"
    params:
        task=task_config,
        data_dir=DATA_DIR,
        seed=config["seed"],
        bad_records=config["bad_records"],
        pool=config["task_vector"]["pool"],
        code=code_hash(
            "task_vector", "records", "tasks", "templates", "sampling", "lenses"
        ),
    script:
        "../scripts/task_vector_pool.py"


rule task_vector:
    input:
        model=model_dir,
        candidates="results/{model}/{task}/prompts/candidates.parquet",
        pool="results/{model}/{task}/prompts/task_vector_pool.parquet",
    output:
        "results/{model}/{task}/tv_features/prompt/resid.parquet",
    log:
        "results/logs/task_vector/{model}/{task}.log",
    conda:
        "../../envs/demoscope.yaml"
    threads: COMPUTE["threads"]
    resources:
        gpu=COMPUTE["gpu"],
    params:
        dtype=lambda wc: config["models"][wc.model].get("dtype", COMPUTE["dtype"]),
        template=template_config,
        code=code_hash(
            "task_vector", "models", "capture", "templates", "tokens", "lenses"
        ),
    script:
        "../scripts/task_vector.py"


# The same statistics as every other lens, in a table of its own (mask `prompt`, site `resid`
# in the report: the 1-shot prompt's last token in the residual stream).
rule correlate_task_vector:
    input:
        features="results/{model}/{task}/tv_features/prompt/resid.parquet",
        quality=quality_input,
        candidates="results/{model}/{task}/prompts/candidates.parquet",
    output:
        "results/{model}/{task}/tv_correlations/prompt/resid.parquet",
    log:
        "results/logs/correlate_task_vector/{model}/{task}.log",
    conda:
        "../../envs/demoscope.yaml"
    params:
        metrics=config["report"]["quality_metrics"],
        bootstrap=config["report"]["bootstrap"],
        seed=config["seed"],
        control_label=lambda wc: config["tasks"][wc.task]["kind"] == "classification",
        features=list(TASK_VECTOR_FEATURES),
        code=code_hash("rhotable", "correlate", "bootstrap", "partial", "lenses"),
    script:
        "../scripts/correlate.py"


# The attention lens's own probe queries and its calibration records: train records that are
# neither candidates nor (by content) quality queries. A placeholder until build_prompts
# writes probe queries of its own.
rule attention_probes:
    input:
        data=task_data,
        candidates="results/{model}/{task}/prompts/candidates.parquet",
        queries="results/{model}/{task}/prompts/quality_queries.parquet",
    output:
        probes="results/{model}/{task}/prompts/attention_probes.parquet",
        calibration="results/{model}/{task}/prompts/attention_calibration.parquet",
    log:
        "results/logs/attention_probes/{model}/{task}.log",
    conda:
        "../../envs/demoscope.yaml"
    params:
        task=task_config,
        data_dir=DATA_DIR,
        seed=config["seed"],
        bad_records=config["bad_records"],
        probes=config["attention"]["probes"],
        calibration=config["attention"]["calibration"],
        code=code_hash("attention", "records", "tasks", "templates", "sampling"),
    script:
        "../scripts/attention_probes.py"


rule attention_lens:
    input:
        model=model_dir,
        candidates="results/{model}/{task}/prompts/candidates.parquet",
        probes="results/{model}/{task}/prompts/attention_probes.parquet",
        calibration="results/{model}/{task}/prompts/attention_calibration.parquet",
    output:
        per_layer="results/{model}/{task}/attn_features/probe/attn.parquet",
        best_head="results/{model}/{task}/attn_features/best_head/attn.parquet",
        heads="results/{model}/{task}/attention_heads.parquet",
    log:
        "results/logs/attention_lens/{model}/{task}.log",
    conda:
        "../../envs/demoscope.yaml"
    threads: COMPUTE["threads"]
    resources:
        gpu=COMPUTE["gpu"],
    params:
        dtype=lambda wc: config["models"][wc.model].get("dtype", COMPUTE["dtype"]),
        template=template_config,
        by_label=lambda wc: config["tasks"][wc.task]["kind"] == "classification",
        code=code_hash("attention", "models", "templates", "tokens", "sampling"),
    script:
        "../scripts/attention_lens.py"


# view: `probe` (per layer, heads averaged) or `best_head` (the calibration's best head).
rule correlate_attention:
    input:
        features="results/{model}/{task}/attn_features/{view}/attn.parquet",
        quality=quality_input,
        candidates="results/{model}/{task}/prompts/candidates.parquet",
    output:
        "results/{model}/{task}/attn_correlations/{view}/attn.parquet",
    log:
        "results/logs/correlate_attention/{model}/{task}/{view}.log",
    wildcard_constraints:
        view="probe|best_head",
    conda:
        "../../envs/demoscope.yaml"
    params:
        metrics=config["report"]["quality_metrics"],
        bootstrap=config["report"]["bootstrap"],
        seed=config["seed"],
        control_label=lambda wc: config["tasks"][wc.task]["kind"] == "classification",
        features=lambda wc: list(ATTENTION_FEATURES[wc.view]),
        code=code_hash("rhotable", "correlate", "bootstrap", "partial", "lenses"),
    script:
        "../scripts/correlate.py"
