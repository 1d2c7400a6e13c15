# Frames: decoded once per dataset and sampling, shared by every backbone and captioner.


rule frames:
    input:
        manifest="results/{dataset}/manifest.parquet",
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
        mem_mb=4000,
        runtime=120,
    params:
        frames=config["frames"],
    script:
        "../scripts/frames.py"
