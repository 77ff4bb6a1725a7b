rule correlate:
    input:
        features=paths.store_table("features"),
        quality=quality_input,
        candidates=paths.prompts("candidates"),
    output:
        rho=paths.store_table("correlations"),
        # Per permutation of quality, this store's largest |rho| (its share of the max-T null).
        null=paths.store_table("null"),
    log:
        paths.log("correlate", "model", "task", "mask", "site"),
    benchmark:
        paths.benchmark("correlate", "model", "task", "mask", "site")
    priority: PRIORITY["correlate"]
    conda:
        "../../envs/demoscope.yaml"
    params:
        metrics=config["report"]["quality_metrics"],
        bootstrap=config["report"]["bootstrap"],
        seed=config["seed"],
        control_label=lambda wc: config["tasks"][wc.task]["kind"] == "classification",
        permutations=config["report"]["permutations"],
        degenerate_share=config["report"]["degenerate_share"],
        code=script_code("correlate"),
    script:
        "../scripts/correlate.py"


rule report:
    input:
        unpack(lambda wc: report_inputs()),
    output:
        csv=report(
            paths.report_file("spearman.csv"),
            caption="../report/spearman.rst",
            category="Quality",
            subcategory="Tables",
        ),
        parquet=paths.report_file("spearman.parquet"),
        headline=report(
            paths.report_file("headline.csv"),
            caption="../report/headline.rst",
            category="Quality",
            subcategory="Tables",
        ),
        reliability=report(
            paths.report_file("reliability.csv"),
            caption="../report/reliability.rst",
            category="Quality",
            subcategory="Tables",
        ),
        # The family's largest |rho| per permutation, per model and task: the figures draw it.
        null=paths.report_file("null_max.parquet"),
        summary=paths.report_file("summary.md"),
        html=report(
            paths.report_file("summary.html"),
            caption="../report/summary.rst",
            category="Quality",
            subcategory="Tables",
        ),
    log:
        paths.log("report"),
    benchmark:
        paths.benchmark("report")
    conda:
        "../../envs/demoscope.yaml"
    params:
        bound=config["report"]["bound"],
        alpha=config["report"]["alpha"],
        power=config["report"]["power"],
        inputs_of=report_keys(),
        code=script_code("report"),
    script:
        "../scripts/report.py"


rule write_config:
    output:
        report(
            paths.report_file("config.yaml"),
            caption="../report/config.rst",
            category="Configuration",
        ),
    log:
        paths.log("write_config"),
    benchmark:
        paths.benchmark("write_config")
    conda:
        "../../envs/demoscope.yaml"
    params:
        config=canonical(config),
        code=script_code("write_config"),
    script:
        "../scripts/write_config.py"
