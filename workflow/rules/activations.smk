# One dump job per model, task and masking strategy: one forward fills every site dumped
# under that mask, each into its own store (activations/{mask}/{site}.zarr, as before). A
# rule's outputs are fixed, so masks are grouped by the sites they dump and each group gets a
# rule of its own: `dump_activations` when every mask dumps the same sites (config/paper.yaml),
# else `dump_activations_<sites>` (the default run: `dump_activations_mlp_out_resid` for
# `causal`, `dump_activations_mlp_out` for the others); common.smk groups them (DUMP_RULES).


for dump_rule, (dump_sites, dump_masks) in DUMP_RULES.items():

    rule:
        name:
            dump_rule
        input:
            unpack(mask_inputs),
            model=model_dir,
            candidates=paths.prompts("candidates"),
        output:
            [directory(paths.activations(site=site)) for site in dump_sites],
        log:
            paths.log("dump_activations", "model", "task", "mask"),
        benchmark:
            paths.benchmark("dump_activations", "model", "task", "mask")
        wildcard_constraints:
            mask="|".join(dump_masks),
        priority: PRIORITY["dump_activations"]
        conda:
            "../../envs/demoscope.yaml"
        threads: COMPUTE["threads"]
        resources:
            gpu=COMPUTE["gpu"],
        params:
            sites=list(dump_sites),
            dtype=lambda wc: config["models"][wc.model].get("dtype", COMPUTE["dtype"]),
            store_dtype=COMPUTE["store_dtype"],
            context=mask_context,
            code=script_code("dump_activations"),
        script:
            "../scripts/dump_activations.py"
