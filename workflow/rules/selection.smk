# Selection: the signals the selectors read, then one select job per strategy instance.


rule embed:
    input:
        model=model_dir,
        candidates=paths.prompts("candidates"),
        queries=paths.prompts("test_queries"),
    output:
        paths.task_table("embeddings"),
    log:
        paths.log("embed", "model", "task"),
    benchmark:
        paths.benchmark("embed", "model", "task")
    priority: PRIORITY["embed"]
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
        candidates=paths.prompts("candidates"),
    output:
        paths.task_table("zero_shot"),
    log:
        paths.log("zero_shot", "model", "task"),
    benchmark:
        paths.benchmark("zero_shot", "model", "task")
    priority: PRIORITY["zero_shot"]
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
        candidates=paths.prompts("candidates"),
        test=paths.prompts("test_queries"),
        quality=paths.prompts("quality_queries"),
    output:
        paths.prompts("contamination"),
    log:
        paths.log("contamination", "model", "task"),
    benchmark:
        paths.benchmark("contamination", "model", "task")
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
        selection=paths.selection(),
        jsonl=paths.sets("jsonl"),
        lm_eval=paths.sets("lm_eval.json"),
    log:
        paths.log("select", "model", "task", "strategy"),
    benchmark:
        paths.benchmark("select", "model", "task", "strategy")
    wildcard_constraints:
        strategy=strategy_names(model=False),
    priority: PRIORITY["select"]
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
