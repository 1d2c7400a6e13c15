#!/usr/bin/env bash
# Snakemake runs this once, inside the new env, right after creating it, from its working
# directory: the zsar checkout. It makes zsar importable in the jobs: editable, so edits to
# src/ apply without rebuilding the env, and without dependencies, which the env file pins.
# (An `-e ../` line in the env file's pip section does not work: conda resolves it against
# the copy of the env file in .snakemake/conda/, and it would pull all of zsar's
# dependencies, torch included, into every env.)
set -euo pipefail
if [ ! -f src/zsar/__init__.py ]; then
    echo "post-deploy: run snakemake from the zsar checkout (no src/zsar in $PWD)" >&2
    exit 1
fi
python -m pip install --no-deps --editable .
