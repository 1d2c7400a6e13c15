# Captions: a video LLM summarises each video from the frames shards (no second decode).


rule caption_shard:
    input:
        frames=frames_shard,
        prompts=f"config/prompts/{config['captions']['prompt_set']}.yaml",
        model=lambda wildcards: model_ready("captioners", wildcards.captioner),
        imported=lambda wildcards: model_files("captioners", wildcards.captioner),
        replanned=replanned_after_manifest,
    output:
        captions="results/{dataset}/captions/{captioner}/{shard}.parquet",
        failures="results/{dataset}/captions/{captioner}/{shard}.failures.parquet",
    log:
        "results/logs/{dataset}/captions/{captioner}/{shard}.log",
    benchmark:
        "results/benchmarks/{dataset}/captions/{captioner}/{shard}.tsv"
    conda:
        "../../envs/torch.yaml"
    resources:
        gpu=lambda wildcards: gpus_for("captioners", wildcards.captioner),
        mem_mb=mem_mb("caption_shard"),
        runtime=runtime("caption_shard"),
    params:
        captioner=lambda wildcards: model_key("captioners", wildcards.captioner),
        prompt_set=config["captions"]["prompt_set"],
        max_new_tokens=config["captions"]["max_new_tokens"],
        code=code("captions"),
    script:
        "../scripts/captions.py"


rule gather_captions:
    input:
        shards=expand(
            "results/{{dataset}}/captions/{{captioner}}/{shard}.parquet",
            shard=SHARDS,
        ),
        replanned=replanned_after_manifest,
    output:
        "results/{dataset}/captions/{captioner}.parquet",
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
