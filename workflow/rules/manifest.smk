# Manifest: a benchmark's annotation files -> one table of videos and one of classes.


rule demo_data:
    output:
        annotations=outputs("demo_data")["annotations"],
        labels=outputs("demo_data")["labels"],
        videos=directory(outputs("demo_data")["videos"]),
    log:
        "results/logs/demo_data.log",
    conda:
        "../../envs/cpu.yaml"
    resources:
        mem_mb=mem_mb("demo_data"),
        runtime=runtime("demo_data"),
    params:
        clips_per_class=config["demo_clips_per_class"],
        seed=config["seed"],
        code=code("demo_data"),
    script:
        "../scripts/demo_data.py"


# A checkpoint, so that after it has run Snakemake looks again at what depends on it: the
# frames are keyed on video_files (the videos and their sizes), not on the manifest's
# paths, so videos moved to a new root re-run the manifest and no decoding.
checkpoint manifest:
    input:
        manifest_inputs,
    output:
        **outputs("manifest"),
    log:
        "results/logs/{dataset}/manifest.log",
    conda:
        "../../envs/cpu.yaml"
    resources:
        mem_mb=mem_mb("manifest"),
        runtime=runtime("manifest"),
    params:
        spec=lambda wildcards: dataset_plan(wildcards).as_params(),
        video_folders=lambda wildcards: dataset_plan(wildcards).video_folders_state(),
        code=code("manifest"),
    script:
        "../scripts/manifest.py"


# The class list has its own rule, keyed on the annotation files' content, not on where
# they are: the descriptors, which may cost hours of LLM time, hang on it and must not
# re-run when a benchmark's folder moves. A checkpoint, so that where it does run (the
# demo's lists moved: their paths are its key) the jobs that read the class list with a
# model are planned again, keyed by its rows (class_list_content), and most do not run.
checkpoint classes:
    input:
        classes_inputs,
    output:
        **outputs("classes"),
    log:
        "results/logs/{dataset}/classes.log",
    conda:
        "../../envs/cpu.yaml"
    resources:
        mem_mb=mem_mb("classes"),
        runtime=runtime("classes"),
    params:
        key=classes_key,
        code=code("classes"),
    script:
        "../scripts/classes.py"


rule failures:
    input:
        unpack(inputs("failures")),
    output:
        **outputs("failures"),
    log:
        "results/logs/{dataset}/failures.log",
    conda:
        "../../envs/cpu.yaml"
    resources:
        mem_mb=mem_mb("failures"),
        runtime=runtime("failures"),
    params:
        code=code("gather_failures"),
    script:
        "../scripts/gather_failures.py"
