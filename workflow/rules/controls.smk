# The controls lens: non-activation signals per candidate, in the same family as the lenses.


rule controls:
    input:
        model=model_dir,
        candidates="results/{model}/{task}/prompts/candidates.parquet",
        queries="results/{model}/{task}/prompts/quality_queries.parquet",
    output:
        "results/{model}/{task}/controls.parquet",
    log:
        "results/logs/controls/{model}/{task}.log",
    benchmark:
        "results/benchmarks/controls/{model}/{task}.tsv"
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
        features="results/{model}/{task}/controls.parquet",
        quality=quality_input,
        candidates="results/{model}/{task}/prompts/candidates.parquet",
    output:
        rho="results/{model}/{task}/controls_correlations.parquet",
        null="results/{model}/{task}/controls_null.parquet",
    log:
        "results/logs/correlate_controls/{model}/{task}.log",
    benchmark:
        "results/benchmarks/correlate_controls/{model}/{task}.tsv"
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
