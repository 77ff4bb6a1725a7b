# Each figure reads only tables the workflow wrote, and carries only the hash of the plotting
# module: editing figure code reruns the figure rules and nothing else.


rule plot_rho_heatmap:
    input:
        spearman=paths.report_file("spearman.parquet"),
        headline=paths.report_file("headline.csv"),
    output:
        png=report(
            paths.figure("rho_heatmap", ext="png"),
            caption="../report/rho_heatmap.rst",
            category="Quality",
            subcategory="rho heatmap",
            labels={"model": "{model}", "task": "{task}"},
        ),
        pdf=paths.figure("rho_heatmap", ext="pdf"),
    log:
        paths.log("plot_rho_heatmap", "model", "task"),
    benchmark:
        paths.benchmark("plot_rho_heatmap", "model", "task")
    conda:
        "../../envs/demoscope.yaml"
    params:
        quality=config["report"]["heatmap_quality"],
        code=script_code("plot_rho_heatmap"),
    script:
        "../scripts/plot_rho_heatmap.py"


rule plot_rho_by_layer:
    input:
        spearman=paths.report_file("spearman.parquet"),
        headline=paths.report_file("headline.csv"),
    output:
        png=report(
            paths.figure("rho_by_layer", ext="png"),
            caption="../report/rho_by_layer.rst",
            category="Quality",
            subcategory="rho by layer",
            labels={"model": "{model}", "task": "{task}"},
        ),
        pdf=paths.figure("rho_by_layer", ext="pdf"),
    log:
        paths.log("plot_rho_by_layer", "model", "task"),
    benchmark:
        paths.benchmark("plot_rho_by_layer", "model", "task")
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
        headline=paths.report_file("headline.csv"),
        features=lambda wc: store_features(wc.model, wc.task),
        sae_features=lambda wc: sae_outputs("sae_features", wc.model, wc.task),
        lens_features=lambda wc: tv_outputs("tv_features", wc.model, wc.task)
        + attention_outputs("attn_features", wc.model, wc.task),
        quality=quality_input,
    output:
        png=report(
            paths.figure("strongest", ext="png"),
            caption="../report/strongest.rst",
            category="Quality",
            subcategory="strongest feature",
            labels={"model": "{model}", "task": "{task}"},
        ),
        pdf=paths.figure("strongest", ext="pdf"),
    log:
        paths.log("plot_strongest", "model", "task"),
    benchmark:
        paths.benchmark("plot_strongest", "model", "task")
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
            paths.figure("quality", ext="png"),
            caption="../report/quality.rst",
            category="Quality",
            subcategory="quality by label",
            labels={"model": "{model}", "task": "{task}"},
        ),
        pdf=paths.figure("quality", ext="pdf"),
    log:
        paths.log("plot_quality", "model", "task"),
    benchmark:
        paths.benchmark("plot_quality", "model", "task")
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
            paths.figure("massive", ext="png"),
            caption="../report/massive.rst",
            category="Activations",
            subcategory="massive activations",
            labels={"model": "{model}", "task": "{task}"},
        ),
        pdf=paths.figure("massive", ext="pdf"),
    log:
        paths.log("plot_massive", "model", "task"),
    benchmark:
        paths.benchmark("plot_massive", "model", "task")
    conda:
        "../../envs/demoscope.yaml"
    params:
        threshold=config["massive"]["threshold"],
        store=massive_store,
        code=script_code("plot_massive"),
    script:
        "../scripts/plot_massive.py"


rule plot_sae_lens:
    input:
        paths.report_file("spearman.parquet"),
    output:
        png=report(
            paths.figure("sae_lens", ext="png"),
            caption="../report/sae_lens.rst",
            category="Quality",
            subcategory="SAE lens",
            labels={"model": "{model}", "task": "{task}"},
        ),
        pdf=paths.figure("sae_lens", ext="pdf"),
    log:
        paths.log("plot_sae_lens", "model", "task"),
    benchmark:
        paths.benchmark("plot_sae_lens", "model", "task")
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
        paths.report_file("strategies.csv"),
    output:
        png=report(
            paths.figure("strategies", ext="png"),
            caption="../report/strategies_figure.rst",
            category="Selection",
            subcategory="test accuracy per strategy",
            labels={"model": "{model}", "task": "{task}"},
        ),
        pdf=paths.figure("strategies", ext="pdf"),
    log:
        paths.log("plot_strategies", "model", "task"),
    benchmark:
        paths.benchmark("plot_strategies", "model", "task")
    conda:
        "../../envs/demoscope.yaml"
    params:
        code=script_code("plot_strategies"),
    script:
        "../scripts/plot_strategies.py"


rule plot_reliability:
    input:
        summary=paths.task_table("reliability"),
        curve=paths.task_table("reliability_curve"),
    output:
        png=report(
            paths.figure("reliability", ext="png"),
            caption="../report/reliability_figure.rst",
            category="Quality",
            subcategory="reliability",
            labels={"model": "{model}", "task": "{task}"},
        ),
        pdf=paths.figure("reliability", ext="pdf"),
    log:
        paths.log("plot_reliability", "model", "task"),
    benchmark:
        paths.benchmark("plot_reliability", "model", "task")
    conda:
        "../../envs/demoscope.yaml"
    params:
        code=script_code("plot_reliability"),
    script:
        "../scripts/plot_reliability.py"
