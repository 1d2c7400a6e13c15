"""Rule tables: every metrics JSON -> results/tables/results.{md,csv,tex}."""

import logging
import sys

sys.stderr = open(snakemake.log[0], "w")
logging.basicConfig(stream=sys.stderr, level=logging.INFO, format="%(asctime)s %(message)s")

from zsar.tables import run_tables_stage

run_tables_stage(
    list(snakemake.input),
    md=snakemake.output.md,
    csv=snakemake.output.csv,
    tex=snakemake.output.tex,
)
