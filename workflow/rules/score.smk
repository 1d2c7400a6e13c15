# Scores and metrics: cheap, and the only jobs a change of λ, weights or fusion re-runs.


rule score:
    input:
        unpack(scoring_inputs),
    output:
        scores="results/{dataset}/scores/{backbone}/{run}.parquet",
        metrics="results/{dataset}/metrics/{backbone}/{run}.json",
    log:
        "results/logs/{dataset}/score/{backbone}/{run}.log",
    conda:
        "../../envs/cpu.yaml"
    resources:
        mem_mb=mem_mb("score"),
        runtime=runtime("score"),
    params:
        scoring=scoring_params,
        chain=scoring_chain,
        # Every class-name rule: the record names those that give the texts it scored with.
        class_rules=PLAN.class_rules,
        dataset="{dataset}",
        backbone=lambda wildcards: model_key("backbones", wildcards.backbone),
        run="{run}",
        # The intervals' settings (not alpha, which only the comparisons use).
        statistics=interval_params(),
        code=code("score"),
    script:
        "../scripts/score.py"
