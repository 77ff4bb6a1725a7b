# Task performance: k-shot accuracy of every strategy instance's selection on the test
# queries, and the correlation of features with the accuracy of random k-shot sets.


# Evaluation loads the model once per (model, task) and group of strategy instances, and still
# writes one table per instance. Two groups: `evaluate` scores the instances whose selection
# reads no example quality (random, similarity, diversity, uncertainty, vote-k, ...), and can
# run while the quality shards do; `evaluate_after_quality` scores those that wait for quality
# (the oracle, and an activation entry whose layer is `best`, chosen by its correlations), so
# that the run's tail after the shards is one short job, not every instance. Adding an
# instance reruns its own select job and its group's evaluate job, which re-evaluates every
# instance of that group (each table is computed on its own, so the others come out the same);
# README explains the trade.
EVALUATION_GROUPS = {
    "evaluate": sorted(n for n in STRATEGIES if not waits_for_quality(n)),
    "evaluate_after_quality": sorted(n for n in STRATEGIES if waits_for_quality(n)),
}


for group, evaluated in EVALUATION_GROUPS.items():
    # No strategy instance in a group, no job for it (a rule needs outputs).
    if not evaluated:
        continue

    rule:
        name:
            group
        input:
            model=model_dir,
            candidates=paths.prompts("candidates"),
            queries=paths.prompts("test_queries"),
            selections=[paths.selection(strategy=strategy) for strategy in evaluated],
        output:
            [paths.evaluation(strategy=strategy) for strategy in evaluated],
        log:
            paths.log(group, "model", "task"),
        benchmark:
            paths.benchmark(group, "model", "task")
        priority: PRIORITY[group]
        conda:
            "../../envs/demoscope.yaml"
        threads: COMPUTE["threads"]
        resources:
            gpu=COMPUTE["gpu"],
        params:
            dtype=lambda wc: config["models"][wc.model].get("dtype", COMPUTE["dtype"]),
            template=template_config,
            generation=generation_config,
            # The strategy of each selection and table, in their order.
            strategies=evaluated,
            code=script_code("evaluate"),
        script:
            "../scripts/evaluate.py"


rule task_sets:
    input:
        model=model_dir,
        candidates=paths.prompts("candidates"),
        queries=paths.prompts("test_queries"),
    output:
        paths.task_table("task_sets"),
    log:
        paths.log("task_sets", "model", "task"),
    benchmark:
        paths.benchmark("task_sets", "model", "task")
    priority: PRIORITY["task_sets"]
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
        sets=paths.task_table("task_sets"),
        features=lambda wc: store_features(wc.model, wc.task),
        sae_features=lambda wc: sae_outputs("sae_features", wc.model, wc.task),
    output:
        paths.task_table("task_spearman"),
    log:
        paths.log("task_correlation", "model", "task"),
    benchmark:
        paths.benchmark("task_correlation", "model", "task")
    conda:
        "../../envs/demoscope.yaml"
    params:
        alpha=config["report"]["alpha"],
        # The (mask, site) of each features and sae_features table, in their order.
        stores=lambda wc: {
            "features": [{"mask": m, "site": s} for m, s in DUMPS],
            "sae_features": [
                {"mask": m, "site": s} for m, s in sae_stores(wc.model, wc.task)
            ],
        },
        code=script_code("task_correlation"),
    script:
        "../scripts/task_correlation.py"


rule report_selection:
    input:
        evaluations=evaluation_tables(),
        task_spearman=task_spearman_tables(),
    output:
        strategies=report(
            paths.report_file("strategies.csv"),
            caption="../report/strategies.rst",
            category="Selection",
            subcategory="Tables",
        ),
        task_spearman=report(
            paths.report_file("task_spearman.csv"),
            caption="../report/task_spearman.rst",
            category="Selection",
            subcategory="Tables",
        ),
    log:
        paths.log("report_selection"),
    benchmark:
        paths.benchmark("report_selection")
    conda:
        "../../envs/demoscope.yaml"
    params:
        alpha=config["report"]["alpha"],
        inputs_of=report_selection_keys(),
        code=script_code("report_selection"),
    script:
        "../scripts/report_selection.py"
