# Task performance: k-shot accuracy of every strategy instance's selection on the test
# queries, and the correlation of features with the accuracy of random k-shot sets.


rule evaluate:
    input:
        model=model_dir,
        candidates="results/{model}/{task}/prompts/candidates.parquet",
        queries="results/{model}/{task}/prompts/test_queries.parquet",
        selection="results/{model}/{task}/selection/{strategy}.parquet",
    output:
        "results/{model}/{task}/evaluation/{strategy}.parquet",
    log:
        "results/logs/evaluate/{model}/{task}/{strategy}.log",
    conda:
        "../../envs/demoscope.yaml"
    threads: COMPUTE["threads"]
    resources:
        gpu=COMPUTE["gpu"],
    params:
        dtype=lambda wc: config["models"][wc.model].get("dtype", COMPUTE["dtype"]),
        template=template_config,
        generation=generation_config,
        code=script_code("evaluate"),
    script:
        "../scripts/evaluate.py"


rule task_sets:
    input:
        model=model_dir,
        candidates="results/{model}/{task}/prompts/candidates.parquet",
        queries="results/{model}/{task}/prompts/test_queries.parquet",
    output:
        "results/{model}/{task}/task_sets.parquet",
    log:
        "results/logs/task_sets/{model}/{task}.log",
    conda:
        "../../envs/demoscope.yaml"
    threads: COMPUTE["threads"]
    resources:
        gpu=COMPUTE["gpu"],
    params:
        k=SELECTION["k"],
        sets=lambda wc: config["tasks"][wc.task]["sizes"].get(
            "task_sets", SELECTION["task_sets"]
        ),
        label_balance=lambda wc: balanced(wc.task),
        seed=config["seed"],
        dtype=lambda wc: config["models"][wc.model].get("dtype", COMPUTE["dtype"]),
        template=template_config,
        generation=generation_config,
        code=script_code("task_sets"),
    script:
        "../scripts/task_sets.py"


rule task_correlation:
    input:
        sets="results/{model}/{task}/task_sets.parquet",
        features=lambda wc: store_features(wc.model, wc.task),
        sae_features=lambda wc: sae_outputs("sae_features", wc.model, wc.task),
    output:
        "results/{model}/{task}/task_spearman.parquet",
    log:
        "results/logs/task_correlation/{model}/{task}.log",
    conda:
        "../../envs/demoscope.yaml"
    params:
        alpha=config["report"]["alpha"],
        code=script_code("task_correlation"),
    script:
        "../scripts/task_correlation.py"


rule report_selection:
    input:
        evaluations=evaluation_tables(),
        task_spearman=task_spearman_tables(),
    output:
        strategies=report(
            "results/report/strategies.csv",
            caption="../report/strategies.rst",
            category="Selection",
            subcategory="Tables",
        ),
        task_spearman=report(
            "results/report/task_spearman.csv",
            caption="../report/task_spearman.rst",
            category="Selection",
            subcategory="Tables",
        ),
    log:
        "results/logs/report_selection/report_selection.log",
    conda:
        "../../envs/demoscope.yaml"
    params:
        alpha=config["report"]["alpha"],
        code=script_code("report_selection"),
    script:
        "../scripts/report_selection.py"
