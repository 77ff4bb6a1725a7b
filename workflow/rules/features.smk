rule compute_features:
    input:
        "results/{model}/{task}/activations/{mask}/{site}.zarr",
    output:
        "results/{model}/{task}/features/{mask}/{site}.parquet",
    log:
        "results/logs/compute_features/{model}/{task}/{mask}/{site}.log",
    benchmark:
        "results/benchmarks/compute_features/{model}/{task}/{mask}/{site}.tsv"
    conda:
        "../../envs/demoscope.yaml"
    params:
        threshold=config["massive"]["threshold"],
        ratio=config["massive"]["ratio"],
        skip_first_token=config["features"]["skip_first_token"],
        code=script_code("compute_features"),
    script:
        "../scripts/compute_features.py"
