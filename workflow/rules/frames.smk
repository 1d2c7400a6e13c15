# Frames: decoded once per dataset and sampling, shared by every backbone and captioner.


rule frames:
    input:
        manifest="results/{dataset}/manifest.parquet",
    output:
        frames="results/{dataset}/frames/{sampling}/{shard}.parquet",
        failures="results/{dataset}/frames/{sampling}/{shard}.failures.parquet",
    params:
        frames=config["frames"],
    threads: 4
    resources:
        mem_mb=4000,
        runtime=120,
    log:
        "results/logs/{dataset}/frames/{sampling}/{shard}.log",
    benchmark:
        "results/benchmarks/{dataset}/frames/{sampling}/{shard}.tsv"
    conda:
        "../../envs/cpu.yaml"
    script:
        "../scripts/frames.py"
