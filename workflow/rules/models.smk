rule prepare_model:
    output:
        directory("resources/models/{model}"),
    log:
        "results/logs/prepare_model/{model}.log",
    benchmark:
        "results/benchmarks/prepare_model/{model}.tsv"
    conda:
        "../../envs/demoscope.yaml"
    params:
        source=lambda wc: config["models"][wc.model]["source"],
        revision=lambda wc: config["models"][wc.model].get("revision"),
        code=script_code("prepare_model"),
    script:
        "../scripts/prepare_model.py"
