rule build_prompts:
    input:
        model=model_dir,
        data=task_data,
    output:
        candidates=paths.prompts("candidates"),
        quality_queries=paths.prompts("quality_queries"),
        test_queries=paths.prompts("test_queries"),
        probe_queries=paths.prompts("probe_queries"),
        skipped=paths.prompts("skipped"),
    log:
        paths.log("build_prompts", "model", "task"),
    benchmark:
        paths.benchmark("build_prompts", "model", "task")
    conda:
        "../../envs/demoscope.yaml"
    params:
        task=task_config,
        data_dir=DATA_DIR,
        seed=config["seed"],
        bad_records=config["bad_records"],
        code=script_code("build_prompts"),
    script:
        "../scripts/build_prompts.py"
