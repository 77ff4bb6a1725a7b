rule prepare_model:
    output:
        directory(paths.model_dir()),
    log:
        paths.log("prepare_model", "model"),
    benchmark:
        paths.benchmark("prepare_model", "model")
    conda:
        "../../envs/demoscope.yaml"
    params:
        source=lambda wc: config["models"][wc.model]["source"],
        revision=lambda wc: config["models"][wc.model].get("revision"),
        code=script_code("prepare_model"),
    script:
        "../scripts/prepare_model.py"
