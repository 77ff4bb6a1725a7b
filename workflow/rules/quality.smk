# Every selection and the best-layer shortcut wait on quality: it starts early. Each job scores
# one contiguous block of the candidates (compute.quality_shards of them per model and task).
rule score_quality:
    input:
        model=model_dir,
        candidates=paths.prompts("candidates"),
        queries=paths.prompts("quality_queries"),
    output:
        quality=paths.quality_shard("quality"),
        # The candidate x query outcomes the quality metrics average: reliability reads them.
        by_query=paths.quality_shard("quality_by_query"),
    log:
        paths.log("score_quality", "model", "task", "shard"),
    benchmark:
        paths.benchmark("score_quality", "model", "task", "shard")
    priority: PRIORITY["score_quality"]
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
        shards=COMPUTE["quality_shards"],
        code=script_code("score_quality"),
    script:
        "../scripts/score_quality.py"


# The shards, concatenated in candidate order: the one-shot quality tables.
rule merge_quality:
    input:
        quality=quality_shards("quality"),
        by_query=quality_shards("quality_by_query"),
    output:
        quality=paths.task_table("quality"),
        by_query=paths.task_table("quality_by_query"),
    log:
        paths.log("merge_quality", "model", "task"),
    benchmark:
        paths.benchmark("merge_quality", "model", "task")
    priority: PRIORITY["merge_quality"]
    conda:
        "../../envs/demoscope.yaml"
    params:
        code=script_code("merge_quality"),
    script:
        "../scripts/merge_quality.py"


# Of the quality every lens is correlated against (quality.definition): one-shot or CondAcc.
rule reliability:
    input:
        by_query=quality_by_query_input,
        quality=quality_input,
    output:
        summary=paths.task_table("reliability"),
        curve=paths.task_table("reliability_curve"),
    log:
        paths.log("reliability", "model", "task"),
    benchmark:
        paths.benchmark("reliability", "model", "task")
    conda:
        "../../envs/demoscope.yaml"
    params:
        metrics=config["report"]["quality_metrics"],
        splits=config["report"]["reliability_splits"],
        degenerate_share=config["report"]["degenerate_share"],
        seed=config["seed"],
        code=script_code("reliability"),
    script:
        "../scripts/reliability.py"
