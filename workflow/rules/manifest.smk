# Manifest: a benchmark's annotation files -> one table of videos and one of classes.


rule demo_data:
    output:
        annotations="resources/demo/annotations.txt",
        labels="resources/demo/labels.csv",
        videos=directory("resources/demo/videos"),
    log:
        "results/logs/demo_data.log",
    conda:
        "../../envs/cpu.yaml"
    params:
        clips_per_class=config["demo_clips_per_class"],
        seed=config["seed"],
    script:
        "../scripts/demo_data.py"


rule manifest:
    input:
        manifest_inputs,
    output:
        manifest="results/{dataset}/manifest.parquet",
    log:
        "results/logs/{dataset}/manifest.log",
    conda:
        "../../envs/cpu.yaml"
    params:
        spec=lambda wildcards: dataset_plan(wildcards).as_params(),
    script:
        "../scripts/manifest.py"


# The class list has its own rule, keyed only on the annotation files: descriptors, which
# may cost hours of LLM time, hang on it and must not re-run when videos move.
rule classes:
    input:
        annotation_files,
    output:
        classes="results/{dataset}/classes.parquet",
    log:
        "results/logs/{dataset}/classes.log",
    conda:
        "../../envs/cpu.yaml"
    params:
        spec=lambda wildcards: {
            **dataset_plan(wildcards).as_params(),
            "video_root": None,
        },
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
