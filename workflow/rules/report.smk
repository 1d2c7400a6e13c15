# Tables (built only from the metrics and comparisons JSONs) and the report.


rule tables:
    input:
        unpack(inputs("tables")),
        references=reference_results(),
    output:
        md=report(
            outputs("tables")["md"],
            caption="../report/tables.rst",
            category="Tables",
        ),
        csv=outputs("tables")["csv"],
        tex=outputs("tables")["tex"],
    log:
        "results/logs/tables.log",
    conda:
        "../../envs/report.yaml"
    resources:
        mem_mb=mem_mb("tables"),
        runtime=runtime("tables"),
    params:
        # The tables cover every record in results/, not only this run's: the list of
        # record files is a param, so a record added by another command re-runs them.
        records=lambda wildcards: on_disk("score", "metrics"),
        # Their comparisons, where other commands left them (a record without one is shown
        # without a paired interval or mark, and the table says so).
        compared=lambda wildcards: on_disk("compare", "comparisons"),
        warn_missing_share=config["warn_missing_share"],
        code=code("tables"),
    script:
        "../scripts/tables.py"


# Explanations, figures and pages for `snakemake --report`. The per-class figures and
# the explanation pages describe one run per (dataset, backbone): REPORT_RUN (common.smk);
# explanations exist for every run.


rule explain:
    input:
        unpack(inputs("explain")),
    output:
        **outputs("explain"),
    log:
        "results/logs/{dataset}/explain/{backbone}/{run}.log",
    conda:
        "../../envs/cpu.yaml"
    resources:
        mem_mb=mem_mb("explain"),
        runtime=runtime("explain"),
    params:
        scoring=lambda wildcards: WIRING.scoring_params(
            wildcards.backbone, wildcards.run
        ),
        templates=lambda wildcards: WIRING.explain_templates(wildcards.run),
        code=code("explain"),
    script:
        "../scripts/explain.py"


rule report_tables_html:
    input:
        unpack(inputs("report_tables_html")),
        references=reference_results(),
    output:
        report(
            outputs("report_tables_html")["html"],
            caption="../report/tables_html.rst",
            category="Tables",
            labels={"table": "results (HTML)"},
        ),
    log:
        "results/logs/report/tables_html.log",
    conda:
        "../../envs/report.yaml"
    resources:
        mem_mb=mem_mb("report_tables_html"),
        runtime=runtime("report_tables_html"),
    params:
        records=lambda wildcards: on_disk("score", "metrics"),
        compared=lambda wildcards: on_disk("compare", "comparisons"),
        warn_missing_share=config["warn_missing_share"],
        code=code("report_tables_html"),
    script:
        "../scripts/report_tables_html.py"


rule report_ablation:
    input:
        unpack(inputs("report_ablation")),
    output:
        report(
            outputs("report_ablation")["png"],
            caption="../report/ablation.rst",
            category="Ablation",
            labels={"dataset": "{dataset}"},
        ),
    log:
        "results/logs/report/{dataset}/ablation.log",
    conda:
        "../../envs/report.yaml"
    resources:
        mem_mb=mem_mb("report_ablation"),
        runtime=runtime("report_ablation"),
    params:
        code=code("report_ablation"),
    script:
        "../scripts/report_ablation.py"


rule report_class_plots:
    input:
        unpack(inputs("report_class_plots")),
    output:
        confusion=report(
            outputs("report_class_plots")["confusion"],
            caption="../report/confusion.rst",
            category="Per-class results",
            subcategory="{dataset}",
            labels={"backbone": "{backbone}", "figure": "confusion matrix"},
        ),
        per_class=report(
            outputs("report_class_plots")["per_class"],
            caption="../report/per_class.rst",
            category="Per-class results",
            subcategory="{dataset}",
            labels={"backbone": "{backbone}", "figure": "per-class accuracy"},
        ),
    log:
        "results/logs/report/{dataset}/{backbone}/class_plots.log",
    conda:
        "../../envs/report.yaml"
    resources:
        mem_mb=mem_mb("report_class_plots"),
        runtime=runtime("report_class_plots"),
    params:
        run=REPORT_RUN,
        max_classes=config["report"]["confusion_max_classes"],
        code=code("report_class_plots"),
    script:
        "../scripts/report_class_plots.py"


rule report_explanations:
    input:
        unpack(inputs("report_explanations")),
    output:
        correct=report(
            outputs("report_explanations")["correct"],
            caption="../report/explanations.rst",
            category="Explanations",
            subcategory="{dataset}",
            labels={"backbone": "{backbone}", "predictions": "correct"},
        ),
        wrong=report(
            outputs("report_explanations")["wrong"],
            caption="../report/explanations.rst",
            category="Explanations",
            subcategory="{dataset}",
            labels={"backbone": "{backbone}", "predictions": "wrong"},
        ),
    log:
        "results/logs/report/{dataset}/{backbone}/explanations.log",
    conda:
        "../../envs/report.yaml"
    resources:
        mem_mb=mem_mb("report_explanations"),
        runtime=runtime("report_explanations"),
    params:
        run=REPORT_RUN,
        per_group=config["report"]["explanations_per_group"],
        seed=config["seed"],
        code=code("report_explanations"),
    script:
        "../scripts/report_explanations.py"


rule report_class_gains:
    input:
        unpack(inputs("report_class_gains")),
    output:
        report(
            outputs("report_class_gains")["html"],
            caption="../report/class_gains.rst",
            category="Per-class results",
            subcategory="{dataset}",
            labels={"backbone": "{backbone}", "figure": "per-class gains"},
        ),
    log:
        "results/logs/report/{dataset}/{backbone}/class_gains.log",
    conda:
        "../../envs/report.yaml"
    resources:
        mem_mb=mem_mb("report_class_gains"),
        runtime=runtime("report_class_gains"),
    params:
        code=code("report_class_gains"),
    script:
        "../scripts/report_class_gains.py"


rule report_summary:
    input:
        unpack(inputs("report_summary")),
    output:
        report(
            outputs("report_summary")["html"],
            caption="../report/summary.rst",
            category="Run summary",
            labels={"dataset": "{dataset}"},
        ),
    log:
        "results/logs/report/{dataset}/summary.log",
    conda:
        "../../envs/report.yaml"
    resources:
        mem_mb=mem_mb("report_summary"),
        runtime=runtime("report_summary"),
    params:
        code=code("report_summary"),
    script:
        "../scripts/report_summary.py"


# The page that names what the report holds, so that a report left by another command
# (the demo's) is seen to be that: params, so that another config re-makes it.
rule report_runs:
    input:
        unpack(inputs("report_runs")),
    output:
        report(
            outputs("report_runs")["html"],
            caption="../report/runs.rst",
            category="Run summary",
            labels={"page": "runs in this report"},
        ),
    log:
        "results/logs/report/runs.log",
    conda:
        "../../envs/report.yaml"
    resources:
        mem_mb=mem_mb("report_runs"),
        runtime=runtime("report_runs"),
    params:
        configfiles=lambda wildcards: shown_configfiles(
            workflow.overwrite_configfiles, Path.cwd()
        ),
        overrides=lambda wildcards: command_line_config(),
        data_root=config["data_root"],
        code=code("report_runs"),
    script:
        "../scripts/report_runs.py"
