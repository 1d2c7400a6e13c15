# Embeddings: video embeddings per frames shard, then the texts: class names (every variant),
# descriptor sentences (the descriptor variants) and captions (the caption variants), each
# in its own file so that a variant re-scores only when a text it uses changes.


rule embed_videos:
    input:
        frames=frames_shard,
        model=lambda wildcards: model_ready("backbones", wildcards.backbone),
        replanned=replanned_after_manifest,
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
        mem_mb=mem_mb("embed_videos"),
        runtime=runtime("embed_videos"),
    params:
        backbone=lambda wildcards: video_model_key(wildcards.backbone),
        pooling=lambda wildcards: pooling_of(wildcards.backbone),
        views=config["frames"]["views"],
        code=code("embed_videos"),
    script:
        "../scripts/embed_videos.py"


rule gather_video_embeddings:
    input:
        shards=expand(
            "results/{{dataset}}/embeddings/{{backbone}}/videos/{shard}.parquet",
            shard=SHARDS,
        ),
        replanned=replanned_after_manifest,
    output:
        "results/{dataset}/embeddings/{backbone}/videos.parquet",
    log:
        "results/logs/{dataset}/embed/{backbone}/gather.log",
    conda:
        "../../envs/cpu.yaml"
    resources:
        mem_mb=mem_mb("gather_video_embeddings"),
        runtime=runtime("gather_video_embeddings"),
    params:
        code=code("gather"),
    script:
        "../scripts/gather.py"


rule embed_class_names:
    input:
        classes=ancient("results/{dataset}/classes.parquet"),
        model=lambda wildcards: model_ready("backbones", wildcards.backbone),
    output:
        "results/{dataset}/embeddings/{backbone}/class-names.parquet",
    log:
        "results/logs/{dataset}/embed/{backbone}/class-names.log",
    conda:
        "../../envs/torch.yaml"
    resources:
        gpu=lambda wildcards: gpus_for("backbones", wildcards.backbone),
        mem_mb=mem_mb("embed_class_names"),
        runtime=runtime("embed_class_names"),
    params:
        backbone=lambda wildcards: text_model_key(wildcards.backbone),
        prompt=name_prompt,
        class_names=class_name_rule,
        classes=class_list_content,
        code=code("embed_class_names"),
    script:
        "../scripts/embed_class_names.py"


rule embed_class_texts:
    input:
        classes=ancient("results/{dataset}/classes.parquet"),
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
        mem_mb=mem_mb("embed_class_texts"),
        runtime=runtime("embed_class_texts"),
    params:
        backbone=lambda wildcards: text_model_key(wildcards.backbone),
        templates=config["descriptors"]["templates"],
        classes=class_list_content,
        code=code("embed_class_texts"),
    script:
        "../scripts/embed_class_texts.py"


rule embed_captions:
    input:
        captions="results/{dataset}/captions/{captioner}.parquet",
        model=lambda wildcards: model_ready("backbones", wildcards.backbone),
        replanned=replanned_after_manifest,
    output:
        "results/{dataset}/embeddings/{backbone}/captions-{captioner}.parquet",
    log:
        "results/logs/{dataset}/embed/{backbone}/captions-{captioner}.log",
    conda:
        "../../envs/torch.yaml"
    resources:
        gpu=lambda wildcards: gpus_for("backbones", wildcards.backbone),
        mem_mb=mem_mb("embed_captions"),
        runtime=runtime("embed_captions"),
    params:
        backbone=lambda wildcards: text_model_key(wildcards.backbone),
        code=code("embed_captions"),
    script:
        "../scripts/embed_captions.py"
