"""Rule report_ablation: a dataset's metrics JSONs -> the ablation bar chart."""

import sys

sys.stderr = open(snakemake.log[0], "w")

import matplotlib

matplotlib.use("Agg")

from zsar.report import run_ablation_plot_stage

run_ablation_plot_stage(
    list(snakemake.input), snakemake.output[0], dataset=snakemake.wildcards.dataset
)
