"""Rule embed_captions: captions -> text embeddings with the backbone's text encoder."""

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
from zsar.embed import run_caption_text_stage
from zsar.provenance import provenance

entry = snakemake.params.backbone
run_caption_text_stage(
    snakemake.input.captions,
    snakemake.output[0],
    load_backbone(entry, snakemake.config["resources"], preferred_device()),
    provenance({"backbone": entry}, model=entry["name"]),
)
