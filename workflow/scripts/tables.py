"""Rule tables: every metrics JSON -> results/tables/results.{md,csv,tex}."""

from zsar.job import start_job


def main(smk) -> None:
    from zsar.tables import run_tables_stage

    run_tables_stage(list(smk.input), md=smk.output.md, csv=smk.output.csv, tex=smk.output.tex)


if __name__ == "__main__":
    start_job(snakemake)
    main(snakemake)
