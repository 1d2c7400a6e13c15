"""Rule explain: one scored run -> an explanation per evaluated video."""

import logging
import sys

sys.stderr = open(snakemake.log[0], "w")
logging.basicConfig(stream=sys.stderr, level=logging.INFO, format="%(asctime)s %(message)s")

from zsar.explain import run_explain_stage

rows = run_explain_stage(
    dict(snakemake.input.items()),
    snakemake.params.scoring,
    snakemake.output[0],
    templates=snakemake.params.templates,
)
logging.info("explained %d videos", rows)
