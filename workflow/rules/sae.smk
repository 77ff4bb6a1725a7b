# The sparse-autoencoder lens (docs/sae.md): a pool of train records that are not candidates,
# its activations, one TopK SAE per layer, and the SAE features of each store the lens reads.


rule sae_pool:
    input:
        model=model_dir,
        data=task_data,
        candidates="results/{model}/{task}/prompts/candidates.parquet",
    output:
        "results/{model}/{task}/prompts/sae_pool.parquet",
    log:
        "results/logs/sae_pool/{model}/{task}.log",
    benchmark:
        "results/benchmarks/sae_pool/{model}/{task}.tsv"
    conda:
        "../../envs/demoscope.yaml"
    params:
        task=task_config,
        data_dir=DATA_DIR,
        seed=config["seed"],
        bad_records=config["bad_records"],
        pool=SAE["pool"],
        held_out=SAE["held_out"],
        code=script_code("sae_pool"),
    script:
        "../scripts/sae_pool.py"


# The pool runs causal, like the backbone's candidates; its SAEs read every mask's store of
# the same site (docs/sae.md). The pool dump and SAE training head a long chain of their own,
# so they start before the many short jobs that are ready at the same time.
rule dump_sae_pool:
    input:
        model=model_dir,
        pool="results/{model}/{task}/prompts/sae_pool.parquet",
    output:
        directory("results/{model}/{task}/sae/pool/causal/{site}.zarr"),
    log:
        "results/logs/dump_sae_pool/{model}/{task}/{site}.log",
    benchmark:
        "results/benchmarks/dump_sae_pool/{model}/{task}/{site}.tsv"
    priority: 2
    conda:
        "../../envs/demoscope.yaml"
    threads: COMPUTE["threads"]
    resources:
        gpu=COMPUTE["gpu"],
    params:
        dtype=lambda wc: config["models"][wc.model].get("dtype", COMPUTE["dtype"]),
        store_dtype=COMPUTE["store_dtype"],
        layers=SAE["layers"],
        code=script_code("dump_sae_pool"),
    script:
        "../scripts/dump_sae_pool.py"


rule train_sae:
    input:
        store="results/{model}/{task}/sae/pool/causal/{site}.zarr",
        pool="results/{model}/{task}/prompts/sae_pool.parquet",
    output:
        directory("results/{model}/{task}/sae/{site}/layer_{layer}"),
    log:
        "results/logs/train_sae/{model}/{task}/{site}/layer_{layer}.log",
    benchmark:
        "results/benchmarks/train_sae/{model}/{task}/{site}/layer_{layer}.tsv"
    priority: 2
    conda:
        "../../envs/demoscope.yaml"
    threads: COMPUTE["threads"]
    resources:
        gpu=COMPUTE["gpu"],
    params:
        training=sae_training,
        code=script_code("train_sae"),
    script:
        "../scripts/train_sae.py"


rule sae_features:
    input:
        store="results/{model}/{task}/activations/{mask}/{site}.zarr",
        saes=sae_directories,
    output:
        features="results/{model}/{task}/sae_features/{mask}/{site}.parquet",
        quality="results/{model}/{task}/sae_quality/{mask}/{site}.parquet",
    log:
        "results/logs/sae_features/{model}/{task}/{mask}/{site}.log",
    benchmark:
        "results/benchmarks/sae_features/{model}/{task}/{mask}/{site}.tsv"
    conda:
        "../../envs/demoscope.yaml"
    params:
        layers=SAE["layers"],
        top_latents=SAE["top_latents"],
        skip_first=SAE["skip_first"],
        model_source=lambda wc: config["models"][wc.model]["source"],
        code=script_code("sae_features"),
    script:
        "../scripts/sae_features.py"


# The same statistics as the moments and massive lenses, in a table of their own so those
# lenses' correlation files stay as they are.
rule correlate_sae:
    input:
        features="results/{model}/{task}/sae_features/{mask}/{site}.parquet",
        quality=quality_input,
        candidates="results/{model}/{task}/prompts/candidates.parquet",
    output:
        rho="results/{model}/{task}/sae_correlations/{mask}/{site}.parquet",
        null="results/{model}/{task}/sae_null/{mask}/{site}.parquet",
    log:
        "results/logs/correlate_sae/{model}/{task}/{mask}/{site}.log",
    benchmark:
        "results/benchmarks/correlate_sae/{model}/{task}/{mask}/{site}.tsv"
    conda:
        "../../envs/demoscope.yaml"
    params:
        metrics=config["report"]["quality_metrics"],
        bootstrap=config["report"]["bootstrap"],
        seed=config["seed"],
        control_label=lambda wc: config["tasks"][wc.task]["kind"] == "classification",
        features=list(SAE_FEATURES),
        permutations=config["report"]["permutations"],
        degenerate_share=config["report"]["degenerate_share"],
        code=script_code("correlate"),
    script:
        "../scripts/correlate.py"
