# Paired comparisons of a backbone's runs on the same videos, read from their scores only:
# cheap, and re-run only when a score changes or `statistics` does (zsar.stages.compare).


rule compare:
    input:
        scores=lambda wildcards: expand(
            "results/{dataset}/scores/{backbone}/{run}.parquet",
            dataset=wildcards.dataset,
            backbone=wildcards.backbone,
            run=RUNS,
        ),
        classes="results/{dataset}/classes.parquet",
    output:
        comparisons="results/{dataset}/comparisons/{backbone}.json",
        class_gains="results/{dataset}/per_class_gains/{backbone}.parquet",
    log:
        "results/logs/{dataset}/compare/{backbone}.log",
    conda:
        "../../envs/cpu.yaml"
    resources:
        mem_mb=mem_mb("compare"),
        runtime=runtime("compare"),
    params:
        runs=compared_runs(),
        failure_policy=config["failure_policy"],
        statistics=config["statistics"],
        code=code("compare"),
    script:
        "../scripts/compare.py"
