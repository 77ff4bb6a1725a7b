rule dump_activations:
    input:
        unpack(mask_inputs),
        model=model_dir,
        candidates="results/{model}/{task}/prompts/candidates.parquet",
    output:
        directory("results/{model}/{task}/activations/{mask}/{site}.zarr"),
    log:
        "results/logs/dump_activations/{model}/{task}/{mask}/{site}.log",
    benchmark:
        "results/benchmarks/dump_activations/{model}/{task}/{mask}/{site}.tsv"
    conda:
        "../../envs/demoscope.yaml"
    threads: COMPUTE["threads"]
    resources:
        gpu=COMPUTE["gpu"],
    params:
        dtype=lambda wc: config["models"][wc.model].get("dtype", COMPUTE["dtype"]),
        store_dtype=COMPUTE["store_dtype"],
        context=mask_context,
        code=code_hash(
            "jobclock",
            "models",
            "capture",
            "store",
            "dump",
            "masks",
            "tokens",
            "sampling",
        ),
    script:
        "../scripts/dump_activations.py"
