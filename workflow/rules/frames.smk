# Frames: decoded once per dataset and sampling, shared by every backbone and captioner.
# Keyed on the videos on disk and their sizes (video_files), not on the manifest's paths;
# the manifest is read (for the paths) but its date is ignored (ancient).


rule frames:
    input:
        video_files="results/{dataset}/video_files.tsv",
        manifest=ancient("results/{dataset}/manifest.parquet"),
    output:
        frames="results/{dataset}/frames/{sampling}/{shard}.parquet",
        failures="results/{dataset}/frames/{sampling}/{shard}.failures.parquet",
    log:
        "results/logs/{dataset}/frames/{sampling}/{shard}.log",
    benchmark:
        "results/benchmarks/{dataset}/frames/{sampling}/{shard}.tsv"
    conda:
        "../../envs/cpu.yaml"
    threads: 4
    resources:
        mem_mb=mem_mb("frames"),
        runtime=runtime("frames"),
    params:
        frames=frames_params(),
        code=code("frames"),
    script:
        "../scripts/frames.py"


# Frames only, for every dataset of the run: `snakemake frames_all` (the step to run first
# on a new cluster: decoding is CPU work, and bad videos show up in the failures files).
rule frames_all:
    input:
        all_frames(),
