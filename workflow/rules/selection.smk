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
        code=script_code("embed"),
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
        code=script_code("zero_shot"),
    script:
        "../scripts/zero_shot.py"


rule contamination:
    input:
        candidates="results/{model}/{task}/prompts/candidates.parquet",
        test="results/{model}/{task}/prompts/test_queries.parquet",
        quality="results/{model}/{task}/prompts/quality_queries.parquet",
    output:
        "results/{model}/{task}/prompts/contamination.parquet",
    log:
        "results/logs/contamination/{model}/{task}.log",
    benchmark:
        "results/benchmarks/contamination/{model}/{task}.tsv"
    conda:
        "../../envs/demoscope.yaml"
    params:
        code=script_code("contamination"),
    script:
        "../scripts/contamination.py"


rule select:
    input:
        unpack(select_inputs),
    output:
        selection="results/{model}/{task}/selection/{strategy}.parquet",
        jsonl="results/{model}/{task}/sets/{strategy}.jsonl",
        lm_eval="results/{model}/{task}/sets/{strategy}.lm_eval.json",
    log:
        "results/logs/select/{model}/{task}/{strategy}.log",
    benchmark:
        "results/benchmarks/select/{model}/{task}/{strategy}.tsv"
    wildcard_constraints:
        strategy=strategy_names(model=False),
    conda:
        "../../envs/demoscope.yaml"
    params:
        strategy=select_params,
        code=script_code("select"),
    script:
        "../scripts/select.py"


# The same, for the kinds that load the model (MDL, ConE: `model` in their entry's `reads`,
# strategies.STRATEGIES): a model job's threads and GPU, and its own rule for a cluster
# profile's GPU partition.
use rule select as select_model with:
    wildcard_constraints:
        strategy=strategy_names(model=True),
    threads: COMPUTE["threads"]
    resources:
        gpu=COMPUTE["gpu"],
