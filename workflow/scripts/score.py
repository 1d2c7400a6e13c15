"""Rule score: embeddings -> scores and the metrics JSON of one backbone and variant run."""

import logging

from zsar.pipeline.job import start_job


def main(smk) -> None:
    from zsar.stages.scoring import run_scoring_stage

    record = run_scoring_stage(
        dict(smk.input.items()),
        smk.params.scoring,
        smk.output.scores,
        smk.output.metrics,
        dataset=smk.params.dataset,
        backbone=smk.params.backbone,
        run=smk.params.run,
        chain=smk.params.chain,
        statistics=smk.params.statistics,
        class_rules=smk.params.class_rules,
    )
    logging.info("top1=%s counts=%s", record["mean"]["top1"], record["counts"])


if __name__ == "__main__":
    start_job(snakemake)
    main(snakemake)
