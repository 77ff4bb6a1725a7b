# Selection: the signals the selectors read, then one select job per strategy instance.


rule embed:
    input:
        model=model_dir,
        candidates="results/{model}/{task}/prompts/candidates.parquet",
        queries="results/{model}/{task}/prompts/test_queries.parquet",
    output:
        "results/{model}/{task}/embeddings.parquet",
    log:
        "results/logs/embed/{model}/{task}.log",
    benchmark:
        "results/benchmarks/embed/{model}/{task}.tsv"
    conda:
        "../../envs/demoscope.yaml"
    threads: COMPUTE["threads"]
    resources:
        gpu=COMPUTE["gpu"],
    params:
        embedding=SELECTION["embedding"],
        dtype=lambda wc: config["models"][wc.model].get("dtype", COMPUTE["dtype"]),
        template=template_config,
        code=code_hash(
            "jobclock", "embeddings", "models", "records", "templates", "tokens"
        ),
    script:
        "../scripts/embed.py"


rule zero_shot:
    input:
        model=model_dir,
        candidates="results/{model}/{task}/prompts/candidates.parquet",
    output:
        "results/{model}/{task}/zero_shot.parquet",
    log:
        "results/logs/zero_shot/{model}/{task}.log",
    benchmark:
        "results/benchmarks/zero_shot/{model}/{task}.tsv"
    conda:
        "../../envs/demoscope.yaml"
    threads: COMPUTE["threads"]
    resources:
        gpu=COMPUTE["gpu"],
    params:
        dtype=lambda wc: config["models"][wc.model].get("dtype", COMPUTE["dtype"]),
        template=template_config,
        generation=lambda wc: config["tasks"][wc.task]["kind"] == "generation",
        code=code_hash(
            "jobclock",
            "zeroshot",
            "embeddings",
            "models",
            "scoring",
            "records",
            "templates",
            "tokens",
            "promptbuilder",
        ),
    script:
        "../scripts/zero_shot.py"


rule select:
    input:
        unpack(select_inputs),
    output:
        "results/{model}/{task}/selection/{strategy}.parquet",
    log:
        "results/logs/select/{model}/{task}/{strategy}.log",
    benchmark:
        "results/benchmarks/select/{model}/{task}/{strategy}.tsv"
    conda:
        "../../envs/demoscope.yaml"
    params:
        strategy=select_params,
        code=code_hash("selection", "selectors", "sampling"),
    script:
        "../scripts/select.py"
