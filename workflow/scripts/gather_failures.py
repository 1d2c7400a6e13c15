"""Rule `failures`: missing videos from the manifest + every stage's failures -> one table."""

import sys

sys.stderr = open(snakemake.log[0], "w")

from zsar.manifest import run_failures_stage  # noqa: E402

run_failures_stage(
    snakemake.input.manifest,
    list(snakemake.input.frames) + list(snakemake.input.captions),
    out=snakemake.output[0],
    log=sys.stderr,
)
