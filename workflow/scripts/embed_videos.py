"""Rule embed_videos: one frames shard -> video embeddings with one backbone."""

import os

# GPU jobs load weights fetched by the fetch_model rule; they never reach a hub.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

import logging
import sys

sys.stderr = open(snakemake.log[0], "w")
logging.basicConfig(stream=sys.stderr, level=logging.INFO, format="%(asctime)s %(message)s")

from zsar.backbones import load_backbone
from zsar.devices import preferred_device
from zsar.embed import run_video_embedding_stage
from zsar.provenance import provenance

entry = snakemake.params.backbone
backbone = load_backbone(entry, snakemake.config["resources"], preferred_device())
run_video_embedding_stage(
    snakemake.input.frames,
    snakemake.output[0],
    backbone,
    workers=snakemake.threads,
    provenance=provenance({"backbone": entry}, model=entry["name"]),
)
