"""Rule report_summary: counts, descriptor fallbacks and failures of one dataset as a page."""

import sys

sys.stderr = open(snakemake.log[0], "w")

from zsar.report import run_summary_stage

run_summary_stage(
    list(snakemake.input.metrics),
    snakemake.input.descriptors,
    snakemake.input.failures,
    snakemake.output[0],
    dataset=snakemake.wildcards.dataset,
)
