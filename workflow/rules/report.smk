rule correlate:
    input:
        features="results/{model}/{task}/features/{mask}/{site}.parquet",
        quality=quality_input,
        candidates="results/{model}/{task}/prompts/candidates.parquet",
    output:
        rho="results/{model}/{task}/correlations/{mask}/{site}.parquet",
        # Per permutation of quality, this store's largest |rho| (its share of the max-T null).
        null="results/{model}/{task}/null/{mask}/{site}.parquet",
    log:
        "results/logs/correlate/{model}/{task}/{mask}/{site}.log",
    benchmark:
        "results/benchmarks/correlate/{model}/{task}/{mask}/{site}.tsv"
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
            "results/report/spearman.csv",
            caption="../report/spearman.rst",
            category="Quality",
            subcategory="Tables",
        ),
        parquet="results/report/spearman.parquet",
        headline=report(
            "results/report/headline.csv",
            caption="../report/headline.rst",
            category="Quality",
            subcategory="Tables",
        ),
        reliability=report(
            "results/report/reliability.csv",
            caption="../report/reliability.rst",
            category="Quality",
            subcategory="Tables",
        ),
        # The family's largest |rho| per permutation, per model and task: the figures draw it.
        null="results/report/null_max.parquet",
        summary="results/report/summary.md",
        html=report(
            "results/report/summary.html",
            caption="../report/summary.rst",
            category="Quality",
            subcategory="Tables",
        ),
    log:
        "results/logs/report/report.log",
    benchmark:
        "results/benchmarks/report/report.tsv"
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
            "results/report/config.yaml",
            caption="../report/config.rst",
            category="Configuration",
        ),
    log:
        "results/logs/write_config/write_config.log",
    benchmark:
        "results/benchmarks/write_config/write_config.tsv"
    conda:
        "../../envs/demoscope.yaml"
    params:
        config=canonical(config),
        code=script_code("write_config"),
    script:
        "../scripts/write_config.py"
