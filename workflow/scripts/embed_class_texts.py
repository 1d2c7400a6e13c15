"""Rule embed_class_texts: class names and descriptor sentences -> text embeddings."""

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
from zsar.embed import run_class_text_stage
from zsar.provenance import provenance

entry = snakemake.params.backbone
run_class_text_stage(
    snakemake.input.classes,
    snakemake.input.descriptors,
    snakemake.output[0],
    load_backbone(entry, snakemake.config["resources"], preferred_device()),
    snakemake.params.templates,
    provenance({"backbone": entry, "templates": snakemake.params.templates}, model=entry["name"]),
)
