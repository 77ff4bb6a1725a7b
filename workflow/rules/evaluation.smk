# Task performance: k-shot accuracy of every strategy instance's selection on the test
# queries, and the correlation of features with the accuracy of random k-shot sets.


# One evaluate job per model and task scores every strategy instance's selection with one
# model load, and still writes one table per instance. Adding an instance reruns its own
# select job and this one job, which re-evaluates every instance of the task (each table is
# computed on its own, exactly as before, so the others come out the same); README explains
# the trade.
EVALUATED = sorted(STRATEGIES)


# No strategy instance, no evaluate job (a rule needs outputs).
if EVALUATED:

    rule evaluate:
        input:
            model=model_dir,
            candidates="results/{model}/{task}/prompts/candidates.parquet",
            queries="results/{model}/{task}/prompts/test_queries.parquet",
            selections=[
                f"results/{{model}}/{{task}}/selection/{strategy}.parquet"
                for strategy in EVALUATED
            ],
        output:
            [
                f"results/{{model}}/{{task}}/evaluation/{strategy}.parquet"
                for strategy in EVALUATED
            ],
        log:
            "results/logs/evaluate/{model}/{task}.log",
        benchmark:
            "results/benchmarks/evaluate/{model}/{task}.tsv"
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
    benchmark:
        "results/benchmarks/task_sets/{model}/{task}.tsv"
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
    benchmark:
        "results/benchmarks/task_correlation/{model}/{task}.tsv"
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
    benchmark:
        "results/benchmarks/report_selection/report_selection.tsv"
    conda:
        "../../envs/demoscope.yaml"
    params:
        alpha=config["report"]["alpha"],
        code=script_code("report_selection"),
    script:
        "../scripts/report_selection.py"
