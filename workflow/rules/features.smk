rule compute_features:
    input:
        paths.activations(),
    output:
        paths.store_table("features"),
    log:
        paths.log("compute_features", "model", "task", "mask", "site"),
    benchmark:
        paths.benchmark("compute_features", "model", "task", "mask", "site")
    priority: PRIORITY["compute_features"]
    conda:
        "../../envs/demoscope.yaml"
    params:
        threshold=config["massive"]["threshold"],
        ratio=config["massive"]["ratio"],
        skip_first_token=config["features"]["skip_first_token"],
        code=script_code("compute_features"),
    script:
        "../scripts/compute_features.py"
