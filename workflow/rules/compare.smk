# Paired comparisons of a backbone's runs on the same videos, read from their scores only:
# cheap, and re-run only when a score changes or `statistics` does (zsar.stages.compare).


rule compare:
    input:
        unpack(inputs("compare")),
    output:
        **outputs("compare"),
    log:
        "results/logs/{dataset}/compare/{backbone}.log",
    conda:
        "../../envs/cpu.yaml"
    resources:
        mem_mb=mem_mb("compare"),
        runtime=runtime("compare"),
    params:
        runs=WIRING.compared_runs(),
        failure_policy=config["failure_policy"],
        statistics=config["statistics"],
        code=code("compare"),
    script:
        "../scripts/compare.py"
