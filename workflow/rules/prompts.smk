rule build_prompts:
    input:
        model=model_dir,
        data=task_data,
    output:
        candidates="results/{model}/{task}/prompts/candidates.parquet",
        quality_queries="results/{model}/{task}/prompts/quality_queries.parquet",
        test_queries="results/{model}/{task}/prompts/test_queries.parquet",
        probe_queries="results/{model}/{task}/prompts/probe_queries.parquet",
        skipped="results/{model}/{task}/prompts/skipped.parquet",
    log:
        "results/logs/build_prompts/{model}/{task}.log",
    benchmark:
        "results/benchmarks/build_prompts/{model}/{task}.tsv"
    conda:
        "../../envs/demoscope.yaml"
    params:
        task=task_config,
        data_dir=DATA_DIR,
        seed=config["seed"],
        bad_records=config["bad_records"],
        code=code_hash(
            "records", "tasks", "templates", "sampling", "prompts", "tokens", "models"
        ),
    script:
        "../scripts/build_prompts.py"
