# Embeddings: video embeddings per frames shard, then the texts: class names (every variant),
# descriptor sentences (the descriptor variants) and captions (the caption variants), each
# in its own file so that a variant re-scores only when a text it uses changes.


rule embed_videos:
    input:
        unpack(inputs("embed_videos")),
    output:
        **outputs("embed_videos"),
    log:
        "results/logs/{dataset}/embed/{backbone}/{shard}.log",
    benchmark:
        "results/benchmarks/{dataset}/embed/{backbone}/{shard}.tsv"
    conda:
        "../../envs/torch.yaml"
    threads: 2
    resources:
        gpu=gpus_for("backbones", "backbone"),
        mem_mb=mem_mb("embed_videos"),
        runtime=runtime("embed_videos"),
    params:
        **WIRING.settings_of("embed_videos"),
        backbone=model_key("backbones", "backbone", "video"),
        pooling=lambda wildcards: WIRING.pooling_of(wildcards.backbone),
        code=code("embed_videos"),
    script:
        "../scripts/embed_videos.py"


rule gather_video_embeddings:
    input:
        unpack(inputs("gather_video_embeddings")),
    output:
        **outputs("gather_video_embeddings"),
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
        unpack(inputs("embed_class_names")),
    output:
        **outputs("embed_class_names"),
    log:
        "results/logs/{dataset}/embed/{backbone}/class-names.log",
    conda:
        "../../envs/torch.yaml"
    resources:
        gpu=gpus_for("backbones", "backbone"),
        mem_mb=mem_mb("embed_class_names"),
        runtime=runtime("embed_class_names"),
    params:
        backbone=model_key("backbones", "backbone", "text"),
        prompt=lambda wildcards: WIRING.name_prompt(wildcards.backbone),
        class_names=lambda wildcards: WIRING.class_name_rule(
            wildcards.dataset, wildcards.backbone
        ),
        classes=class_list_content,
        code=code("embed_class_names"),
    script:
        "../scripts/embed_class_names.py"


rule embed_class_texts:
    input:
        unpack(inputs("embed_class_texts")),
    output:
        **outputs("embed_class_texts"),
    log:
        "results/logs/{dataset}/embed/{backbone}/classes-{llm}.log",
    conda:
        "../../envs/torch.yaml"
    resources:
        gpu=gpus_for("backbones", "backbone"),
        mem_mb=mem_mb("embed_class_texts"),
        runtime=runtime("embed_class_texts"),
    params:
        **WIRING.settings_of("embed_class_texts"),
        backbone=model_key("backbones", "backbone", "text"),
        classes=class_list_content,
        code=code("embed_class_texts"),
    script:
        "../scripts/embed_class_texts.py"


rule embed_captions:
    input:
        unpack(inputs("embed_captions")),
    output:
        **outputs("embed_captions"),
    log:
        "results/logs/{dataset}/embed/{backbone}/captions-{captioner}.log",
    conda:
        "../../envs/torch.yaml"
    resources:
        gpu=gpus_for("backbones", "backbone"),
        mem_mb=mem_mb("embed_captions"),
        runtime=runtime("embed_captions"),
    params:
        backbone=model_key("backbones", "backbone", "text"),
        code=code("embed_captions"),
    script:
        "../scripts/embed_captions.py"
