"""Rule score: embeddings -> scores and the metrics JSON of one backbone and variant run."""

import logging
import sys

sys.stderr = open(snakemake.log[0], "w")
logging.basicConfig(stream=sys.stderr, level=logging.INFO, format="%(asctime)s %(message)s")

from zsar.scoring import run_scoring_stage

record = run_scoring_stage(
    dict(snakemake.input.items()),
    snakemake.params.scoring,
    snakemake.output.scores,
    snakemake.output.metrics,
    dataset=snakemake.params.dataset,
    backbone=snakemake.params.backbone,
    run=snakemake.params.run,
)
logging.info("top1=%.4f counts=%s", record["mean"]["top1"], record["counts"])
