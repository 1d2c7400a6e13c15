"""Caption one frames shard (rule caption_shard)."""

import os

# GPU jobs load weights fetched by the fetch_model rule; they never reach a hub.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

import logging
import sys

sys.stderr = open(snakemake.log[0], "w")
logging.basicConfig(level=logging.INFO, stream=sys.stderr,
                    format="%(asctime)s %(levelname)s %(name)s: %(message)s")
# One line per HTTP request is noise in the log of an openai captioner.
logging.getLogger("httpx").setLevel(logging.WARNING)

from zsar.captions import run_caption_stage  # noqa: E402 - after the log redirect

run_caption_stage(
    frames_shard=snakemake.input.frames,
    out=snakemake.output.captions,
    failures_out=snakemake.output.failures,
    entry=snakemake.params.captioner,
    prompt_set_path=snakemake.input.prompts,
    max_new_tokens=snakemake.params.max_new_tokens,
    # Read from config, not a rule param: batching does not change the captions, so a new
    # batch size must not re-run the stage.
    batch_size=snakemake.config["captions"]["batch_size"],
    resources=snakemake.config["resources"],
    device="auto",
)
