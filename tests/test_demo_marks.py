"""A result made with a demo model says so, from what the stages recorded, in every table
format; and the tables count the videos that failed."""

from __future__ import annotations

import copy
import csv
import io
from types import SimpleNamespace

from snakemake.iocontainers import Wildcards
from test_tables import BASE, CHAIN

from zsar.commands.report import tables_html
from zsar.commands.tables import (
    ablation_pivot,
    footnote_lines,
    table_rows,
    to_csv,
    to_latex,
    to_markdown,
)
from zsar.models.fetch import fetch_model
from zsar.models.model_origins import demo_models, recorded_models
from zsar.models.registry import get_entry, load_registry, model_dir, model_origin
from zsar.pipeline.job import job_models

REGISTRY = "config/models.yaml"


def test_random_weights_are_a_demo_model_whatever_the_entry_says(tiny_resources):
    entry = get_entry(load_registry(REGISTRY), "backbones", "tiny-clip")
    assert model_origin(entry, tiny_resources) == {"name": "tiny-clip", "demo": True}
    # Without the registry's flag, the ready file still says the weights were built.
    unflagged = {k: v for k, v in entry.items() if k != "demo"}
    assert model_origin(unflagged, tiny_resources)["demo"] is True


def test_weights_from_a_folder_are_no_demo_model(tiny_resources, tmp_path):
    entry = {"name": "mine", "backend": "open_clip",
             "source": f"local-dir:{model_dir(tiny_resources, 'tiny-clip')}"}
    fetch_model(entry, tmp_path, "backbones")
    assert model_origin(entry, tmp_path) == {"name": "mine", "demo": False}


def test_hand_written_demo_descriptors_are_a_demo_model(tmp_path):
    entry = get_entry(load_registry(REGISTRY), "llms", "demo-curated")
    assert model_origin(entry, tmp_path)["demo"] is True  # no ready file: the flag decides


def test_an_embedding_job_records_every_model_its_wildcards_name(tiny_resources):
    smk = SimpleNamespace(
        config={"models": REGISTRY, "resources": str(tiny_resources)},
        wildcards=Wildcards(fromdict={"dataset": "demo", "backbone": "tiny-clip",
                                      "llm": "demo-curated"}),
    )
    assert job_models(smk) == {"backbone": {"name": "tiny-clip", "demo": True},
                               "llm": {"name": "demo-curated", "demo": True}}


def test_the_record_reads_the_inputs_not_the_chain():
    chain = {**CHAIN, "descriptors": {"llm": {"name": "qwen", "hf_repo": "Qwen/x"}}}
    provenances = [{"models": {"backbone": {"name": "b16", "demo": False}}},
                   {"models": {"backbone": {"name": "b16", "demo": True},
                               "llm": {"name": "qwen", "demo": False}}}]
    assert recorded_models(provenances, chain) == {"backbone": {"name": "b16", "demo": True},
                                                   "llm": {"name": "qwen", "demo": False}}


def test_inputs_without_a_record_fall_back_to_the_chain_identity():
    chain = {**CHAIN, "captions": {"captioner": {"name": "tiny-vlm", "build": {"seed": 0}}}}
    models = recorded_models([{}], chain)
    assert models == {"backbone": {"name": "b16", "demo": None},
                      "captioner": {"name": "tiny-vlm", "demo": True}}
    assert demo_models({"models": models}) == ["tiny-vlm (captioner)"]


def _records():
    real = copy.deepcopy(BASE)
    real["models"] = {"backbone": {"name": "b16", "demo": False}}
    demo = copy.deepcopy(BASE)
    demo.update(backbone="tiny-clip",
                counts={"videos": 93, "evaluated": 88, "failed": 2, "missing": 3, "excluded": 5},
                models={"backbone": {"name": "tiny-clip", "demo": True},
                        "llm": {"name": "demo-curated", "demo": True}})
    return real, demo


def test_every_format_marks_the_demo_rows_and_only_them():
    real, demo = _records()
    records = [real, demo]
    rows = table_rows(records)
    md = to_markdown(rows, footnote_lines(records), records)
    demo_row = next(line for line in md.splitlines() if line.startswith("| ucf101 | tiny-clip |"))
    real_row = next(line for line in md.splitlines() if line.startswith("| ucf101 | b16 |"))
    assert "demo models: tiny-clip (backbone), demo-curated (LLM)" in demo_row
    assert "demo" not in real_row
    assert 'Rows noted "demo models" were made with demo models' in md
    assert ["ucf101", "tiny-clip (demo models)"] == ablation_pivot(records)[1][1][:2]
    assert "| ucf101 | tiny-clip (demo models) | baseline |" in md  # per split

    by_backbone = {r["backbone"]: r for r in csv.DictReader(io.StringIO(to_csv(rows)))}
    assert by_backbone["tiny-clip"]["demo_models"] == "tiny-clip (backbone); demo-curated (LLM)"
    assert by_backbone["b16"]["demo_models"] == ""

    tex = to_latex(rows, footnote_lines(records))
    assert r"tiny-clip$^{\ddagger}$" in tex and r"b16$^{\ddagger}$" not in tex
    assert r"$^{\ddagger}$Made with demo models" in tex

    page = tables_html(records)
    assert "demo models: tiny-clip (backbone), demo-curated (LLM)" in page
    assert "Rows noted &quot;demo models&quot; were made with demo models" in page


def test_no_demo_row_no_demo_words():
    real, _ = _records()
    rows = table_rows([real])
    assert "demo" not in to_markdown(rows, footnote_lines([real]), [real])
    assert "ddagger" not in to_latex(rows, footnote_lines([real]))


def test_the_tables_count_failed_videos_beside_missing_and_excluded():
    real, demo = _records()
    rows = table_rows([real, demo])
    md = to_markdown(rows, footnote_lines([real, demo]))
    header = next(line for line in md.splitlines() if line.startswith("| dataset |"))
    assert "| evaluated | failed | missing | excluded |" in header
    assert "| 88 | 2 | 3 | 5 |" in md and "| 90 | 0 | 3 | 3 |" in md  # BASE lacks `failed`
    assert [r["failed"] for r in csv.DictReader(io.StringIO(to_csv(rows)))] == ["0", "2"]
    assert "<th>failed</th>" in tables_html([real, demo])
