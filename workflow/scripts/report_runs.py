"""Rule report_runs: the runs a report holds (config files, datasets x backbones x runs)."""

from zsar.pipeline.job import start_job


def main(smk) -> None:
    from zsar.pipeline.run_summary import run_runs_page_stage

    run_runs_page_stage(
        list(smk.input.metrics),
        smk.output[0],
        configfiles=smk.params.configfiles,
        overrides=smk.params.overrides,
        data_root=smk.params.data_root,
    )


if __name__ == "__main__":
    start_job(snakemake)
    main(snakemake)
