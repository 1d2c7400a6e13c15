"""Rule report_ablation: a dataset's metrics JSONs -> the ablation bar chart."""

from zsar.pipeline.job import start_job


def main(smk) -> None:
    from zsar.commands.report import run_ablation_plot_stage

    run_ablation_plot_stage(list(smk.input), smk.output[0], dataset=smk.wildcards.dataset)


if __name__ == "__main__":
    start_job(snakemake)
    main(snakemake)
