"""Rule report_class_plots: one run's scores -> confusion matrix and per-class accuracy."""

import sys

sys.stderr = open(snakemake.log[0], "w")

import matplotlib

matplotlib.use("Agg")

from zsar.report import run_class_plots_stage

w = snakemake.wildcards
run_class_plots_stage(
    snakemake.input.scores,
    snakemake.input.classes,
    confusion_path=snakemake.output.confusion,
    per_class_path=snakemake.output.per_class,
    title=f"{w.dataset} / {w.backbone} / {snakemake.params.run}",
    max_classes=snakemake.params.max_classes,
)
