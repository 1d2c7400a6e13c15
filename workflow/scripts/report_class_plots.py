"""Rule report_class_plots: one run's scores -> confusion matrix and per-class accuracy."""

from zsar.pipeline.job import start_job


def main(smk) -> None:
    from zsar.commands.report import run_class_plots_stage

    w = smk.wildcards
    run_class_plots_stage(
        smk.input.scores,
        smk.input.classes,
        confusion_path=smk.output.confusion,
        per_class_path=smk.output.per_class,
        title=f"{w.dataset} / {w.backbone} / {smk.params.run}",
        max_classes=smk.params.max_classes,
    )


if __name__ == "__main__":
    start_job(snakemake)
    main(snakemake)
