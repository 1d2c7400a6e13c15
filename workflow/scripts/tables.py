"""Rule tables: every metrics JSON of the results folder -> results/tables/results.{md,csv,tex}."""

from zsar.pipeline.job import start_job


def main(smk) -> None:
    from zsar.commands.tables import run_tables_stage

    run_tables_stage(
        [*smk.input.metrics, *smk.params.records],
        md=smk.output.md,
        csv=smk.output.csv,
        tex=smk.output.tex,
        warn_missing_share=smk.params.warn_missing_share,
        references_path=smk.input.references or None,
        comparisons_paths=[*smk.input.comparisons, *smk.params.compared],
    )


if __name__ == "__main__":
    start_job(snakemake)
    main(snakemake)
