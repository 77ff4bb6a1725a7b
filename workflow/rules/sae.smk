# The sparse-autoencoder lens (docs/sae.md): a pool of train records that are not candidates,
# its activations, one TopK SAE per layer, and the SAE features of each store the lens reads.


rule sae_pool:
    input:
        model=model_dir,
        data=task_data,
        candidates=paths.prompts("candidates"),
    output:
        paths.prompts("sae_pool"),
    log:
        paths.log("sae_pool", "model", "task"),
    benchmark:
        paths.benchmark("sae_pool", "model", "task")
    priority: PRIORITY["sae_pool"]
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
        pool=paths.prompts("sae_pool"),
    output:
        directory(paths.sae_pool_store()),
    log:
        paths.log("dump_sae_pool", "model", "task", "site"),
    benchmark:
        paths.benchmark("dump_sae_pool", "model", "task", "site")
    priority: PRIORITY["dump_sae_pool"]
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
        store=paths.sae_pool_store(),
        pool=paths.prompts("sae_pool"),
    output:
        directory(paths.sae_dir()),
    log:
        paths.log("train_sae", "model", "task", "site", "layer"),
    benchmark:
        paths.benchmark("train_sae", "model", "task", "site", "layer")
    priority: PRIORITY["train_sae"]
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
        store=paths.activations(),
        saes=sae_directories,
    output:
        features=paths.store_table("sae_features"),
        quality=paths.store_table("sae_quality"),
    log:
        paths.log("sae_features", "model", "task", "mask", "site"),
    benchmark:
        paths.benchmark("sae_features", "model", "task", "mask", "site")
    priority: PRIORITY["sae_features"]
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
        features=paths.store_table("sae_features"),
        quality=quality_input,
        candidates=paths.prompts("candidates"),
    output:
        rho=paths.store_table("sae_correlations"),
        null=paths.store_table("sae_null"),
    log:
        paths.log("correlate_sae", "model", "task", "mask", "site"),
    benchmark:
        paths.benchmark("correlate_sae", "model", "task", "mask", "site")
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
