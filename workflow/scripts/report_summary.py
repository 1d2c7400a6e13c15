"""Rule report_summary: counts, descriptor fallbacks and failures of one dataset as a page."""

from zsar.pipeline.job import start_job


def main(smk) -> None:
    from zsar.commands.report import run_summary_stage

    run_summary_stage(
        list(smk.input.metrics),
        smk.input.descriptors,
        smk.input.failures,
        smk.output[0],
        dataset=smk.wildcards.dataset,
    )


if __name__ == "__main__":
    start_job(snakemake)
    main(snakemake)
