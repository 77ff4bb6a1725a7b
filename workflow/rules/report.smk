rule correlate:
    input:
        features="results/{model}/{task}/features/{mask}/{site}.parquet",
        quality="results/{model}/{task}/quality.parquet",
        candidates="results/{model}/{task}/prompts/candidates.parquet",
    output:
        "results/{model}/{task}/correlations/{mask}/{site}.parquet",
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
        code=code_hash(
            "rhotable",
            "correlate",
            "bootstrap",
            "partial",
            "features",
        ),
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
        code=code_hash("report", "headline", "fdr", "lenses", "massive"),
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
    script:
        "../scripts/write_config.py"
