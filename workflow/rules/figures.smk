# Each figure reads only tables the workflow wrote, and carries only the hash of the plotting
# module: editing figure code reruns the figure rules and nothing else.


rule plot_rho_heatmap:
    input:
        spearman="results/report/spearman.parquet",
        headline="results/report/headline.csv",
    output:
        png=report(
            "results/figures/rho_heatmap/{model}/{task}.png",
            caption="../report/rho_heatmap.rst",
            category="Quality",
            subcategory="rho heatmap",
            labels={"model": "{model}", "task": "{task}"},
        ),
        pdf="results/figures/rho_heatmap/{model}/{task}.pdf",
    log:
        "results/logs/plot_rho_heatmap/{model}/{task}.log",
    benchmark:
        "results/benchmarks/plot_rho_heatmap/{model}/{task}.tsv"
    conda:
        "../../envs/demoscope.yaml"
    params:
        quality=config["report"]["heatmap_quality"],
        code=script_code("plot_rho_heatmap"),
    script:
        "../scripts/plot_rho_heatmap.py"


rule plot_rho_by_layer:
    input:
        spearman="results/report/spearman.parquet",
        headline="results/report/headline.csv",
    output:
        png=report(
            "results/figures/rho_by_layer/{model}/{task}.png",
            caption="../report/rho_by_layer.rst",
            category="Quality",
            subcategory="rho by layer",
            labels={"model": "{model}", "task": "{task}"},
        ),
        pdf="results/figures/rho_by_layer/{model}/{task}.pdf",
    log:
        "results/logs/plot_rho_by_layer/{model}/{task}.log",
    benchmark:
        "results/benchmarks/plot_rho_by_layer/{model}/{task}.tsv"
    conda:
        "../../envs/demoscope.yaml"
    params:
        quality=config["report"]["heatmap_quality"],
        bound=config["report"]["bound"],
        alpha=config["report"]["alpha"],
        code=script_code("plot_rho_by_layer"),
    script:
        "../scripts/plot_rho_by_layer.py"


rule plot_strongest:
    input:
        headline="results/report/headline.csv",
        features=lambda wc: store_features(wc.model, wc.task),
        sae_features=lambda wc: sae_outputs("sae_features", wc.model, wc.task),
        lens_features=lambda wc: tv_outputs("tv_features", wc.model, wc.task)
        + attention_outputs("attn_features", wc.model, wc.task),
        quality=quality_input,
    output:
        png=report(
            "results/figures/strongest/{model}/{task}.png",
            caption="../report/strongest.rst",
            category="Quality",
            subcategory="strongest feature",
            labels={"model": "{model}", "task": "{task}"},
        ),
        pdf="results/figures/strongest/{model}/{task}.pdf",
    log:
        "results/logs/plot_strongest/{model}/{task}.log",
    benchmark:
        "results/benchmarks/plot_strongest/{model}/{task}.tsv"
    conda:
        "../../envs/demoscope.yaml"
    params:
        code=script_code("plot_strongest"),
    script:
        "../scripts/plot_strongest.py"


rule plot_quality:
    input:
        quality_input,
    output:
        png=report(
            "results/figures/quality/{model}/{task}.png",
            caption="../report/quality.rst",
            category="Quality",
            subcategory="quality by label",
            labels={"model": "{model}", "task": "{task}"},
        ),
        pdf="results/figures/quality/{model}/{task}.pdf",
    log:
        "results/logs/plot_quality/{model}/{task}.log",
    benchmark:
        "results/benchmarks/plot_quality/{model}/{task}.tsv"
    conda:
        "../../envs/demoscope.yaml"
    params:
        metrics=config["report"]["quality_metrics"],
        code=script_code("plot_quality"),
    script:
        "../scripts/plot_quality.py"


rule plot_massive:
    input:
        massive_features,
    output:
        png=report(
            "results/figures/massive/{model}/{task}.png",
            caption="../report/massive.rst",
            category="Activations",
            subcategory="massive activations",
            labels={"model": "{model}", "task": "{task}"},
        ),
        pdf="results/figures/massive/{model}/{task}.pdf",
    log:
        "results/logs/plot_massive/{model}/{task}.log",
    benchmark:
        "results/benchmarks/plot_massive/{model}/{task}.tsv"
    conda:
        "../../envs/demoscope.yaml"
    params:
        threshold=config["massive"]["threshold"],
        code=script_code("plot_massive"),
    script:
        "../scripts/plot_massive.py"


rule plot_sae_lens:
    input:
        "results/report/spearman.parquet",
    output:
        png=report(
            "results/figures/sae_lens/{model}/{task}.png",
            caption="../report/sae_lens.rst",
            category="Quality",
            subcategory="SAE lens",
            labels={"model": "{model}", "task": "{task}"},
        ),
        pdf="results/figures/sae_lens/{model}/{task}.pdf",
    log:
        "results/logs/plot_sae_lens/{model}/{task}.log",
    benchmark:
        "results/benchmarks/plot_sae_lens/{model}/{task}.tsv"
    conda:
        "../../envs/demoscope.yaml"
    params:
        quality=config["report"]["heatmap_quality"],
        bound=config["report"]["bound"],
        code=script_code("plot_sae_lens"),
    script:
        "../scripts/plot_sae_lens.py"


rule plot_strategies:
    input:
        "results/report/strategies.csv",
    output:
        png=report(
            "results/figures/strategies/{model}/{task}.png",
            caption="../report/strategies_figure.rst",
            category="Selection",
            subcategory="test accuracy per strategy",
            labels={"model": "{model}", "task": "{task}"},
        ),
        pdf="results/figures/strategies/{model}/{task}.pdf",
    log:
        "results/logs/plot_strategies/{model}/{task}.log",
    benchmark:
        "results/benchmarks/plot_strategies/{model}/{task}.tsv"
    conda:
        "../../envs/demoscope.yaml"
    params:
        code=script_code("plot_strategies"),
    script:
        "../scripts/plot_strategies.py"


rule plot_reliability:
    input:
        summary="results/{model}/{task}/reliability.parquet",
        curve="results/{model}/{task}/reliability_curve.parquet",
    output:
        png=report(
            "results/figures/reliability/{model}/{task}.png",
            caption="../report/reliability_figure.rst",
            category="Quality",
            subcategory="reliability",
            labels={"model": "{model}", "task": "{task}"},
        ),
        pdf="results/figures/reliability/{model}/{task}.pdf",
    log:
        "results/logs/plot_reliability/{model}/{task}.log",
    benchmark:
        "results/benchmarks/plot_reliability/{model}/{task}.tsv"
    conda:
        "../../envs/demoscope.yaml"
    params:
        code=script_code("plot_reliability"),
    script:
        "../scripts/plot_reliability.py"
