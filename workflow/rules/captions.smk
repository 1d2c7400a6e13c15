# Captions: a video LLM summarises each video from the frames shards (no second decode).


rule caption_shard:
    input:
        unpack(inputs("caption_shard")),
        prompts=f"config/prompts/{config['captions']['prompt_set']}.yaml",
    output:
        **outputs("caption_shard"),
    log:
        "results/logs/{dataset}/captions/{captioner}/{shard}.log",
    benchmark:
        "results/benchmarks/{dataset}/captions/{captioner}/{shard}.tsv"
    conda:
        "../../envs/torch.yaml"
    resources:
        gpu=gpus_for("captioners", "captioner"),
        mem_mb=mem_mb("caption_shard"),
        runtime=runtime("caption_shard"),
    params:
        **WIRING.settings_of("caption_shard"),
        captioner=model_key("captioners", "captioner"),
        code=code("captions"),
    script:
        "../scripts/captions.py"


rule gather_captions:
    input:
        unpack(inputs("gather_captions")),
    output:
        **outputs("gather_captions"),
    log:
        "results/logs/{dataset}/captions/{captioner}.gather.log",
    conda:
        "../../envs/cpu.yaml"
    resources:
        mem_mb=mem_mb("gather_captions"),
        runtime=runtime("gather_captions"),
    params:
        code=code("gather"),
    script:
        "../scripts/gather.py"
