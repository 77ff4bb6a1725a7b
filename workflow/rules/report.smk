rule report:
    input:
        unpack(lambda wc: report_inputs()),
    output:
        csv=report(
            "results/report/spearman.csv",
            caption="../report/spearman.rst",
            category="Quality",
        ),
        parquet="results/report/spearman.parquet",
        summary=report(
            "results/report/summary.md",
            caption="../report/summary.rst",
            category="Quality",
        ),
    log:
        "results/logs/report/report.log",
    conda:
        "../../envs/demoscope.yaml"
    params:
        bound=config["report"]["bound"],
        metrics=config["report"]["quality_metrics"],
        code=code_hash("report", "correlate", "features"),
    script:
        "../scripts/report.py"


rule plot_rho_heatmap:
    input:
        "results/report/spearman.parquet",
    output:
        report(
            "results/figures/rho_heatmap/{model}/{task}.png",
            caption="../report/rho_heatmap.rst",
            category="Quality",
            subcategory="{model}",
        ),
    log:
        "results/logs/plot_rho_heatmap/{model}/{task}.log",
    conda:
        "../../envs/demoscope.yaml"
    params:
        quality=config["report"]["heatmap_quality"],
        code=code_hash("figures"),
    script:
        "../scripts/plot_rho_heatmap.py"
