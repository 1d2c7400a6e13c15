"""Rule report_class_gains: one backbone's per-class gains -> the report page."""

from zsar.pipeline.job import start_job


def main(smk) -> None:
    from zsar.commands.report import run_class_gains_page_stage

    run_class_gains_page_stage(
        smk.input[0],
        smk.output[0],
        title=f"{smk.wildcards.dataset}, {smk.wildcards.backbone}: per-class gains over baseline",
    )


if __name__ == "__main__":
    start_job(snakemake)
    main(snakemake)
