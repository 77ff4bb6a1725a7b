rule prepare_model:
    output:
        directory("resources/models/{model}"),
    params:
        source=lambda wc: config["models"][wc.model]["source"],
        revision=lambda wc: config["models"][wc.model].get("revision"),
        code=code_hash("models"),
    log:
        "results/logs/prepare_model/{model}.log",
    conda:
        "../../envs/demoscope.yaml"
    script:
        "../scripts/prepare_model.py"
