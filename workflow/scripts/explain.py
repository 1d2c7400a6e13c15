"""Rule explain: one scored run -> an explanation per evaluated video."""

import logging

from zsar.pipeline.job import start_job


def main(smk) -> None:
    from zsar.stages.explain import run_explain_stage

    rows = run_explain_stage(
        dict(smk.input.items()),
        smk.params.scoring,
        smk.output[0],
        templates=smk.params.templates,
    )
    logging.info("explained %d videos", rows)


if __name__ == "__main__":
    start_job(snakemake)
    main(snakemake)
