"""Rule report_explanations: one run's explanations -> pages of correct and wrong predictions."""

from zsar.pipeline.job import start_job


def main(smk) -> None:
    from zsar.commands.report import run_explanation_pages_stage

    w = smk.wildcards
    run_explanation_pages_stage(
        smk.input.explanations,
        list(smk.input.frames),
        {"correct": smk.output.correct, "wrong": smk.output.wrong},
        title=f"{w.dataset} / {w.backbone} / {smk.params.run}",
        per_group=smk.params.per_group,
        seed=smk.params.seed,
    )


if __name__ == "__main__":
    start_job(snakemake)
    main(snakemake)
