"""The start of every workflow job: every script in workflow/scripts begins with `start_job`.

It sends the job's standard error to the rule's log, Python's and file descriptor 2's alike,
so that decoders, worker processes and C libraries write there too instead of to the
terminal; sets one log format; keeps HTTP clients from logging every request; and, unless a
job downloads (fetch_model), keeps it off the model hub: the weights it needs were put in
resources/models/ beforehand, and a GPU node usually has no internet, so a hub lookup could
only hang or, worse, pull a different revision.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
import traceback
from collections.abc import Iterator

import pyarrow as pa

from zsar.data.provenance import provenance
from zsar.models.backbones import load_backbone
from zsar.models.devices import preferred_device
from zsar.models.registry import get_entry, load_registry, model_origin

LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
# Libraries whose INFO lines are one per request or per file: noise in a job's log.
QUIET_LOGGERS = ("httpx", "httpcore", "urllib3", "filelock")


def start_job(smk, *, hub_offline: bool = True) -> None:
    """Set up a job from its `snakemake` object (only its `log` is read)."""
    log_file = open(smk.log[0], "w", buffering=1)  # noqa: SIM115 - open for the whole job
    os.dup2(log_file.fileno(), 2)
    sys.stderr = log_file
    logging.basicConfig(level=logging.INFO, stream=log_file, format=LOG_FORMAT, force=True)
    for name in QUIET_LOGGERS:
        logging.getLogger(name).setLevel(logging.WARNING)
    if hub_offline:
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    # Arrow's default pool (mimalloc) keeps what a job has freed: a job that reads its
    # inputs a block at a time would still peak near the sum of its blocks (a 110,000-video
    # compare job: 273 MB against 210 MB). The system allocator gives large blocks back.
    pa.set_memory_pool(pa.system_memory_pool())


def model_entry(smk, section: str, name: str) -> dict:
    """A model's whole registry entry. The rule's params hold only its identity (the cache
    key, zsar.models.registry.model_identity); the job reads the rest, e.g. where to download a
    missing checkpoint, from the registry itself."""
    return get_entry(load_registry(smk.config["models"]), section, name)


def job_backbone(smk):
    """(backbone on the best device, provenance) of an embedding job's {backbone}."""
    entry = model_entry(smk, "backbones", smk.wildcards.backbone)
    backbone = load_backbone(entry, smk.config["resources"], preferred_device())
    block = provenance({"backbone": smk.params.backbone}, model=entry["name"],
                       extra={"code_version": smk.params.code, "models": job_models(smk)})
    return backbone, block


# The job's wildcard that names a model -> its registry section; the key is the model's
# role in a metrics record's `models`.
MODEL_WILDCARDS = {"backbone": "backbones", "captioner": "captioners", "llm": "llms"}


def job_models(smk) -> dict:
    """role -> zsar.models.registry.model_origin of each model the job's wildcards name: an
    embedding job records the captioner or LLM whose texts it embeds as well, so the score
    job reads from its inputs alone whether a demo model made them. Here, not in the stages'
    own modules: this module is no part of their code version, so recording it re-runs
    nothing already made."""
    return {
        role: model_origin(model_entry(smk, section, getattr(smk.wildcards, role)),
                           smk.config["resources"])
        for role, section in MODEL_WILDCARDS.items()
        if role in smk.wildcards.keys()
    }


@contextlib.contextmanager
def one_line_failure(smk, *expected: type[BaseException]) -> Iterator[None]:
    """A failure of a kind in `expected` ends the job with its message as the log's last line.

    The default profile prints a failed job's log on the console (show-failed-logs), so a
    traceback there buries the one line that says what to do (e.g. a fetch without
    internet: ~90 lines per model). The traceback goes to `<log>.traceback` instead, which
    the line names; any other exception still fails with its full traceback in the log.
    """
    try:
        yield
    except expected as err:
        details = f"{smk.log[0]}.traceback"
        with open(details, "w") as out:
            traceback.print_exception(err, file=out)
        logging.getLogger("zsar").error("%s (traceback: %s)", err, details)
        sys.exit(1)
