"""Rule descriptors: class list -> attributes, descriptions and hierarchy per class (JSON)."""

import os

# GPU jobs load weights fetched by the fetch_model rule; they never reach a hub.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

import logging
import sys

sys.stderr = open(snakemake.log[0], "w")
logging.basicConfig(stream=sys.stderr, level=logging.INFO, format="%(asctime)s %(message)s")
# httpx logs every request at INFO; one line per class and retry is noise in the log.
logging.getLogger("httpx").setLevel(logging.WARNING)

from zsar.descriptors import run_descriptor_stage

run_descriptor_stage(
    classes_path=snakemake.input.classes,
    out_path=snakemake.output[0],
    entry=snakemake.params.llm,
    prompt_set_path=snakemake.input.prompts,
    max_new_tokens=snakemake.params.max_new_tokens,
    # Not a param: the batch size changes speed, not the answers, so it is no cache key.
    batch_size=snakemake.config["descriptors"]["batch_size"],
    repair_attempts=snakemake.params.repair_attempts,
    resources=snakemake.config["resources"],
    device="auto",
)
