# Every selection and the best-layer shortcut wait on quality: it starts early.
rule score_quality:
    input:
        model=model_dir,
        candidates="results/{model}/{task}/prompts/candidates.parquet",
        queries="results/{model}/{task}/prompts/quality_queries.parquet",
    output:
        quality="results/{model}/{task}/quality.parquet",
        # The candidate x query outcomes the quality metrics average: reliability reads them.
        by_query="results/{model}/{task}/quality_by_query.parquet",
    log:
        "results/logs/score_quality/{model}/{task}.log",
    benchmark:
        "results/benchmarks/score_quality/{model}/{task}.tsv"
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
        code=script_code("score_quality"),
    script:
        "../scripts/score_quality.py"


# Of the quality every lens is correlated against (quality.definition): one-shot or CondAcc.
rule reliability:
    input:
        by_query=quality_by_query_input,
        quality=quality_input,
    output:
        summary="results/{model}/{task}/reliability.parquet",
        curve="results/{model}/{task}/reliability_curve.parquet",
    log:
        "results/logs/reliability/{model}/{task}.log",
    benchmark:
        "results/benchmarks/reliability/{model}/{task}.tsv"
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
