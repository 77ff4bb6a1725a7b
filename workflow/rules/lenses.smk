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
        # Per candidate x query, the outcomes averaged over its prompts: reliability reads them.
        by_query="results/{model}/{task}/quality_condacc_by_query.parquet",
    log:
        "results/logs/condacc_quality/{model}/{task}.log",
    benchmark:
        "results/benchmarks/condacc_quality/{model}/{task}.tsv"
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
        code=script_code("condacc_quality"),
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
    benchmark:
        "results/benchmarks/task_vector_pool/{model}/{task}.tsv"
    conda:
        "../../envs/demoscope.yaml"
    params:
        task=task_config,
        data_dir=DATA_DIR,
        seed=config["seed"],
        bad_records=config["bad_records"],
        pool=config["task_vector"]["pool"],
        code=script_code("task_vector_pool"),
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
    benchmark:
        "results/benchmarks/task_vector/{model}/{task}.tsv"
    conda:
        "../../envs/demoscope.yaml"
    threads: COMPUTE["threads"]
    resources:
        gpu=COMPUTE["gpu"],
    params:
        dtype=lambda wc: config["models"][wc.model].get("dtype", COMPUTE["dtype"]),
        template=template_config,
        code=script_code("task_vector"),
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
        rho="results/{model}/{task}/tv_correlations/prompt/resid.parquet",
        # Per permutation of quality, this store's largest |rho| (its share of the max-T null).
        null="results/{model}/{task}/tv_null/prompt/resid.parquet",
    log:
        "results/logs/correlate_task_vector/{model}/{task}.log",
    benchmark:
        "results/benchmarks/correlate_task_vector/{model}/{task}.tsv"
    conda:
        "../../envs/demoscope.yaml"
    params:
        metrics=config["report"]["quality_metrics"],
        bootstrap=config["report"]["bootstrap"],
        seed=config["seed"],
        control_label=lambda wc: config["tasks"][wc.task]["kind"] == "classification",
        features=list(TASK_VECTOR_FEATURES),
        permutations=config["report"]["permutations"],
        degenerate_share=config["report"]["degenerate_share"],
        code=script_code("correlate"),
    script:
        "../scripts/correlate.py"


# The attention lens's calibration records: train records that are neither candidates nor (by
# content) quality or probe queries. Its probe queries are build_prompts' (the query mask's).
rule attention_calibration:
    input:
        data=task_data,
        candidates="results/{model}/{task}/prompts/candidates.parquet",
        queries="results/{model}/{task}/prompts/quality_queries.parquet",
        probes="results/{model}/{task}/prompts/probe_queries.parquet",
    output:
        "results/{model}/{task}/prompts/attention_calibration.parquet",
    log:
        "results/logs/attention_calibration/{model}/{task}.log",
    benchmark:
        "results/benchmarks/attention_calibration/{model}/{task}.tsv"
    conda:
        "../../envs/demoscope.yaml"
    params:
        task=task_config,
        data_dir=DATA_DIR,
        seed=config["seed"],
        bad_records=config["bad_records"],
        calibration=config["attention"]["calibration"],
        code=script_code("attention_calibration"),
    script:
        "../scripts/attention_calibration.py"


rule attention_lens:
    input:
        model=model_dir,
        candidates="results/{model}/{task}/prompts/candidates.parquet",
        probes="results/{model}/{task}/prompts/probe_queries.parquet",
        calibration="results/{model}/{task}/prompts/attention_calibration.parquet",
    output:
        per_layer="results/{model}/{task}/attn_features/probe/attn.parquet",
        best_head="results/{model}/{task}/attn_features/best_head/attn.parquet",
        heads="results/{model}/{task}/attention_heads.parquet",
    log:
        "results/logs/attention_lens/{model}/{task}.log",
    benchmark:
        "results/benchmarks/attention_lens/{model}/{task}.tsv"
    conda:
        "../../envs/demoscope.yaml"
    threads: COMPUTE["threads"]
    resources:
        gpu=COMPUTE["gpu"],
    params:
        dtype=lambda wc: config["models"][wc.model].get("dtype", COMPUTE["dtype"]),
        template=template_config,
        by_label=lambda wc: config["tasks"][wc.task]["kind"] == "classification",
        code=script_code("attention_lens"),
    script:
        "../scripts/attention_lens.py"


# view: `probe` (per layer, heads averaged) or `best_head` (the calibration's best head).
rule correlate_attention:
    input:
        features="results/{model}/{task}/attn_features/{view}/attn.parquet",
        quality=quality_input,
        candidates="results/{model}/{task}/prompts/candidates.parquet",
    output:
        rho="results/{model}/{task}/attn_correlations/{view}/attn.parquet",
        null="results/{model}/{task}/attn_null/{view}/attn.parquet",
    log:
        "results/logs/correlate_attention/{model}/{task}/{view}.log",
    benchmark:
        "results/benchmarks/correlate_attention/{model}/{task}/{view}.tsv"
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
        permutations=config["report"]["permutations"],
        degenerate_share=config["report"]["degenerate_share"],
        code=script_code("correlate"),
    script:
        "../scripts/correlate.py"
