# Scores and metrics: cheap, and the only jobs a change of λ, weights or fusion re-runs.


rule score:
    input:
        unpack(inputs("score")),
    output:
        **outputs("score"),
    log:
        "results/logs/{dataset}/score/{backbone}/{run}.log",
    conda:
        "../../envs/cpu.yaml"
    resources:
        mem_mb=mem_mb("score"),
        runtime=runtime("score"),
    params:
        scoring=lambda wildcards: WIRING.scoring_params(
            wildcards.backbone, wildcards.run
        ),
        chain=scoring_chain,
        # Every class-name rule: the record names those that give the texts it scored with.
        class_rules=PLAN.class_rules,
        dataset="{dataset}",
        backbone=model_key("backbones", "backbone"),
        run="{run}",
        # The intervals' settings (not alpha, which only the comparisons use).
        statistics=WIRING.interval_params(),
        code=code("score"),
    script:
        "../scripts/score.py"
