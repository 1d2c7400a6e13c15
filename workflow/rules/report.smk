# Tables (built only from the metrics JSONs) and the report.


rule tables:
    input:
        all_metrics(),
    output:
        md=report(
            "results/tables/results.md",
            caption="../report/tables.rst",
            category="Tables",
        ),
        csv="results/tables/results.csv",
        tex="results/tables/results.tex",
    log:
        "results/logs/tables.log",
    conda:
        "../../envs/report.yaml"
    script:
        "../scripts/tables.py"
