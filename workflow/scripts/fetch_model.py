"""Rule fetch_model: download (or, for tiny models, build) one model into resources/models/."""

import logging
import sys
from pathlib import Path

sys.stderr = open(snakemake.log[0], "w")
logging.basicConfig(stream=sys.stderr, level=logging.INFO, format="%(asctime)s %(message)s")

from zsar.fetch import fetch_model

ready = fetch_model(snakemake.params.entry, snakemake.config["resources"], snakemake.params.section)
if Path(ready) != Path(snakemake.output.ready):
    raise RuntimeError(f"fetch_model wrote {ready}, but the rule expects {snakemake.output.ready}")
