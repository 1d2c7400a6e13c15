"""Rule report_explanations: one run's explanations -> pages of correct and wrong predictions."""

import sys

sys.stderr = open(snakemake.log[0], "w")

from zsar.report import run_explanation_pages_stage

w = snakemake.wildcards
run_explanation_pages_stage(
    snakemake.input.explanations,
    list(snakemake.input.frames),
    {"correct": snakemake.output.correct, "wrong": snakemake.output.wrong},
    title=f"{w.dataset} / {w.backbone} / {snakemake.params.run}",
    per_group=snakemake.params.per_group,
    seed=snakemake.params.seed,
)
