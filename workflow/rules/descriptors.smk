# Descriptors: attributes, descriptions and a hierarchy per class, written by an LLM.
# Keyed by the class list's rows (not its file's date or where the lists are), the LLM,
# the prompt set and the generation parameters only, so a change of backbone or lists
# moved to another folder never re-run it.


rule descriptors:
    input:
        classes=ancient("results/{dataset}/classes.parquet"),
        prompts=f"config/prompts/{config['descriptors']['prompt_set']}.yaml",
        model=lambda wildcards: model_ready("llms", wildcards.llm),
        curated=lambda wildcards: model_files("llms", wildcards.llm),
    output:
        "results/{dataset}/descriptors/{llm}.json",
    log:
        "results/logs/{dataset}/descriptors/{llm}.log",
    benchmark:
        "results/benchmarks/{dataset}/descriptors/{llm}.tsv"
    conda:
        "../../envs/torch.yaml"
    resources:
        gpu=lambda wildcards: gpus_for("llms", wildcards.llm),
        mem_mb=mem_mb("descriptors"),
        runtime=runtime("descriptors"),
    params:
        llm=lambda wildcards: model_key("llms", wildcards.llm),
        classes=class_list_content,
        prompt_set=config["descriptors"]["prompt_set"],
        max_new_tokens=config["descriptors"]["max_new_tokens"],
        repair_attempts=config["descriptors"]["repair_attempts"],
        code=code("descriptors"),
    script:
        "../scripts/descriptors.py"
