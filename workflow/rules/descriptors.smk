# Descriptors: attributes, descriptions and a hierarchy per class, written by an LLM.
# Keyed by the class list's rows (not its file's date or where the lists are), the LLM,
# the prompt set and the generation parameters only, so a change of backbone or lists
# moved to another folder never re-run it.


rule descriptors:
    input:
        unpack(inputs("descriptors")),
        prompts=f"config/prompts/{config['descriptors']['prompt_set']}.yaml",
    output:
        **outputs("descriptors"),
    log:
        "results/logs/{dataset}/descriptors/{llm}.log",
    benchmark:
        "results/benchmarks/{dataset}/descriptors/{llm}.tsv"
    conda:
        "../../envs/torch.yaml"
    resources:
        gpu=gpus_for("llms", "llm"),
        mem_mb=mem_mb("descriptors"),
        runtime=runtime("descriptors"),
    params:
        **WIRING.settings_of("descriptors"),
        llm=model_key("llms", "llm"),
        classes=class_list_content,
        code=code("descriptors"),
    script:
        "../scripts/descriptors.py"
