# Beyond the study (docs/lenses.md): CondAcc quality (Chang & Jia 2023) and the task-vector lens.


# Each candidate's mean accuracy over random k-shot prompts that contain it; with
# quality.definition: condacc every lens is correlated against this table (quality_table).
rule condacc_quality:
    input:
        model=model_dir,
        candidates=paths.prompts("candidates"),
        queries=paths.prompts("quality_queries"),
    output:
        quality=paths.task_table("quality_condacc"),
        prompts=paths.task_table("condacc_prompts"),
        # Per candidate x query, the outcomes averaged over its prompts: reliability reads them.
        by_query=paths.task_table("quality_condacc_by_query"),
    log:
        paths.log("condacc_quality", "model", "task"),
    benchmark:
        paths.benchmark("condacc_quality", "model", "task")
    priority: PRIORITY["condacc_quality"]
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
        candidates=paths.prompts("candidates"),
    output:
        paths.prompts("task_vector_pool"),
    log:
        paths.log("task_vector_pool", "model", "task"),
    benchmark:
        paths.benchmark("task_vector_pool", "model", "task")
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
        candidates=paths.prompts("candidates"),
        pool=paths.prompts("task_vector_pool"),
    output:
        paths.store_table("tv_features", mask="prompt", site="resid"),
    log:
        paths.log("task_vector", "model", "task"),
    benchmark:
        paths.benchmark("task_vector", "model", "task")
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
        features=paths.store_table("tv_features", mask="prompt", site="resid"),
        quality=quality_input,
        candidates=paths.prompts("candidates"),
    output:
        rho=paths.store_table("tv_correlations", mask="prompt", site="resid"),
        # Per permutation of quality, this store's largest |rho| (its share of the max-T null).
        null=paths.store_table("tv_null", mask="prompt", site="resid"),
    log:
        paths.log("correlate_task_vector", "model", "task"),
    benchmark:
        paths.benchmark("correlate_task_vector", "model", "task")
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
        candidates=paths.prompts("candidates"),
        queries=paths.prompts("quality_queries"),
        probes=paths.prompts("probe_queries"),
    output:
        paths.prompts("attention_calibration"),
    log:
        paths.log("attention_calibration", "model", "task"),
    benchmark:
        paths.benchmark("attention_calibration", "model", "task")
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
        candidates=paths.prompts("candidates"),
        probes=paths.prompts("probe_queries"),
        calibration=paths.prompts("attention_calibration"),
    output:
        per_layer=paths.store_table("attn_features", mask="probe", site="attn"),
        best_head=paths.store_table("attn_features", mask="best_head", site="attn"),
        heads=paths.task_table("attention_heads"),
    log:
        paths.log("attention_lens", "model", "task"),
    benchmark:
        paths.benchmark("attention_lens", "model", "task")
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
        features=paths.store_table("attn_features", mask="{view}", site="attn"),
        quality=quality_input,
        candidates=paths.prompts("candidates"),
    output:
        rho=paths.store_table("attn_correlations", mask="{view}", site="attn"),
        null=paths.store_table("attn_null", mask="{view}", site="attn"),
    log:
        paths.log("correlate_attention", "model", "task", "view"),
    benchmark:
        paths.benchmark("correlate_attention", "model", "task", "view")
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
