# Frames: decoded once per dataset and sampling, shared by every backbone and captioner.
# Keyed on the videos on disk and their sizes (video_files), not on the manifest's paths;
# the manifest is read (for the paths) but its date is ignored (ancient).


rule frames:
    input:
        unpack(inputs("frames")),
    output:
        **outputs("frames"),
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
        frames=WIRING.frames_params(),
        code=code("frames"),
    script:
        "../scripts/frames.py"


# Frames only, for every dataset of the run: `snakemake frames_all` (the step to run first
# on a new cluster: decoding is CPU work, and bad videos show up in the failures files).
rule frames_all:
    input:
        WIRING.targets("frames", "frames"),
        WIRING.targets("frames", "failures"),
