"""Rule report_tables_html: every metrics JSON of the results folder -> the tables as HTML."""

from zsar.pipeline.job import start_job


def main(smk) -> None:
    from zsar.commands.report import run_tables_html_stage

    run_tables_html_stage(
        [*smk.input.metrics, *smk.params.records],
        smk.output[0],
        warn_missing_share=smk.params.warn_missing_share,
        references_path=smk.input.references or None,
        comparisons_paths=[*smk.input.comparisons, *smk.params.compared],
    )


if __name__ == "__main__":
    start_job(snakemake)
    main(snakemake)
