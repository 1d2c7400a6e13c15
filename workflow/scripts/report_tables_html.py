"""Rule report_tables_html: every metrics JSON -> the results table and ablation pivot as HTML."""

from zsar.job import start_job


def main(smk) -> None:
    from zsar.report import run_tables_html_stage

    run_tables_html_stage(list(smk.input), smk.output[0])


if __name__ == "__main__":
    start_job(snakemake)
    main(snakemake)
