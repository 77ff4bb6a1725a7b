# Every selection and the best-layer shortcut wait on quality: it starts early.
rule score_quality:
    input:
        model=model_dir,
        candidates="results/{model}/{task}/prompts/candidates.parquet",
        queries="results/{model}/{task}/prompts/quality_queries.parquet",
    output:
        "results/{model}/{task}/quality.parquet",
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
        code=code_hash(
            "jobclock",
            "models",
            "scoring",
            "quality",
            "templates",
            "tokens",
            "generation",
            "answers",
        ),
    script:
        "../scripts/score_quality.py"
