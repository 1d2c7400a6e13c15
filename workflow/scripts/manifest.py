"""Rules `manifest` and `classes`: a dataset's annotation files -> manifest.parquet or
classes.parquet (whichever output the rule names)."""

import sys

sys.stderr = open(snakemake.log[0], "w")

from zsar.manifest import run_manifest_stage  # noqa: E402

run_manifest_stage(
    snakemake.params.spec,
    manifest_out=snakemake.output.get("manifest"),
    classes_out=snakemake.output.get("classes"),
    log=sys.stderr,
)
