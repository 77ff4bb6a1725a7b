# The controls lens: non-activation signals per candidate, in the same family as the lenses.


rule controls:
    input:
        model=model_dir,
        candidates=paths.prompts("candidates"),
        queries=paths.prompts("quality_queries"),
    output:
        paths.task_table("controls"),
    log:
        paths.log("controls", "model", "task"),
    benchmark:
        paths.benchmark("controls", "model", "task")
    priority: PRIORITY["controls"]
    conda:
        "../../envs/demoscope.yaml"
    threads: COMPUTE["threads"]
    resources:
        gpu=COMPUTE["gpu"],
    params:
        dtype=lambda wc: config["models"][wc.model].get("dtype", COMPUTE["dtype"]),
        template=template_config,
        kind=lambda wc: config["tasks"][wc.task]["kind"],
        code=script_code("controls"),
    script:
        "../scripts/controls.py"


rule correlate_controls:
    input:
        features=paths.task_table("controls"),
        quality=quality_input,
        candidates=paths.prompts("candidates"),
    output:
        rho=paths.task_table("controls_correlations"),
        null=paths.task_table("controls_null"),
    log:
        paths.log("correlate_controls", "model", "task"),
    benchmark:
        paths.benchmark("correlate_controls", "model", "task")
    conda:
        "../../envs/demoscope.yaml"
    params:
        metrics=config["report"]["quality_metrics"],
        bootstrap=config["report"]["bootstrap"],
        seed=config["seed"],
        control_label=lambda wc: config["tasks"][wc.task]["kind"] == "classification",
        features=list(CONTROL_FEATURES),
        permutations=config["report"]["permutations"],
        degenerate_share=config["report"]["degenerate_share"],
        code=script_code("correlate"),
    script:
        "../scripts/correlate.py"
