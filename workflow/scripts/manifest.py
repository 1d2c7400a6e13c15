"""Rule `manifest`: a dataset's annotation files -> manifest.parquet and classes.parquet."""

import sys

sys.stderr = open(snakemake.log[0], "w")

from zsar.manifest import run_manifest_stage  # noqa: E402

run_manifest_stage(
    snakemake.params.spec,
    manifest_out=snakemake.output.manifest,
    classes_out=snakemake.output.classes,
    log=sys.stderr,
)
