# Manifest: a benchmark's annotation files -> one table of videos and one of classes.


rule demo_data:
    output:
        annotations="resources/demo/annotations.txt",
        labels="resources/demo/labels.csv",
        videos=directory("resources/demo/videos"),
    params:
        clips_per_class=config["demo_clips_per_class"],
        seed=config["seed"],
    log:
        "results/logs/demo_data.log",
    conda:
        "../../envs/cpu.yaml"
    script:
        "../scripts/demo_data.py"


rule manifest:
    input:
        annotation_inputs,
    output:
        manifest="results/{dataset}/manifest.parquet",
        classes="results/{dataset}/classes.parquet",
    params:
        name="{dataset}",
        spec=lambda wildcards: dataset_plan(wildcards).as_params(),
    log:
        "results/logs/{dataset}/manifest.log",
    conda:
        "../../envs/cpu.yaml"
    script:
        "../scripts/manifest.py"


rule failures:
    input:
        manifest="results/{dataset}/manifest.parquet",
        frames=frames_failures,
        captions=caption_failures,
    output:
        "results/{dataset}/failures.parquet",
    log:
        "results/logs/{dataset}/failures.log",
    conda:
        "../../envs/cpu.yaml"
    script:
        "../scripts/gather_failures.py"
