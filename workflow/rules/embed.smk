# Embeddings: video embeddings per frames shard, then the class and caption texts.


rule embed_videos:
    input:
        frames=frames_shard,
        model=lambda wildcards: model_ready("backbones", wildcards.backbone),
    output:
        "results/{dataset}/embeddings/{backbone}/videos/{shard}.parquet",
    log:
        "results/logs/{dataset}/embed/{backbone}/{shard}.log",
    benchmark:
        "results/benchmarks/{dataset}/embed/{backbone}/{shard}.tsv"
    conda:
        "../../envs/torch.yaml"
    threads: 2
    resources:
        gpu=lambda wildcards: gpus_for("backbones", wildcards.backbone),
        mem_mb=16000,
        runtime=120,
    params:
        backbone=lambda wildcards: registry_entry("backbones", wildcards.backbone),
    script:
        "../scripts/embed_videos.py"


rule gather_video_embeddings:
    input:
        expand(
            "results/{{dataset}}/embeddings/{{backbone}}/videos/{shard}.parquet",
            shard=SHARDS,
        ),
    output:
        "results/{dataset}/embeddings/{backbone}/videos.parquet",
    log:
        "results/logs/{dataset}/embed/{backbone}/gather.log",
    conda:
        "../../envs/cpu.yaml"
    script:
        "../scripts/gather.py"


rule embed_class_texts:
    input:
        classes="results/{dataset}/classes.parquet",
        descriptors="results/{dataset}/descriptors/{llm}.json",
        model=lambda wildcards: model_ready("backbones", wildcards.backbone),
    output:
        "results/{dataset}/embeddings/{backbone}/classes-{llm}.parquet",
    log:
        "results/logs/{dataset}/embed/{backbone}/classes-{llm}.log",
    conda:
        "../../envs/torch.yaml"
    resources:
        gpu=lambda wildcards: gpus_for("backbones", wildcards.backbone),
        mem_mb=8000,
        runtime=30,
    params:
        backbone=lambda wildcards: registry_entry("backbones", wildcards.backbone),
        templates=config["descriptors"]["templates"],
    script:
        "../scripts/embed_class_texts.py"


rule embed_captions:
    input:
        captions="results/{dataset}/captions/{captioner}.parquet",
        model=lambda wildcards: model_ready("backbones", wildcards.backbone),
    output:
        "results/{dataset}/embeddings/{backbone}/captions-{captioner}.parquet",
    log:
        "results/logs/{dataset}/embed/{backbone}/captions-{captioner}.log",
    conda:
        "../../envs/torch.yaml"
    resources:
        gpu=lambda wildcards: gpus_for("backbones", wildcards.backbone),
        mem_mb=8000,
        runtime=30,
    params:
        backbone=lambda wildcards: registry_entry("backbones", wildcards.backbone),
    script:
        "../scripts/embed_captions.py"
