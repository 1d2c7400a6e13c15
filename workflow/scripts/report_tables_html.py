"""Rule report_tables_html: every metrics JSON -> the results table and ablation pivot as HTML."""

import sys

sys.stderr = open(snakemake.log[0], "w")

from zsar.report import run_tables_html_stage

run_tables_html_stage(list(snakemake.input), snakemake.output[0])
