"""Descriptors stage: tolerant parsing, the schema, the file backend, the tiny LLM's fallbacks,
and the texts handed to the embedding stage."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import yaml

from zsar.core.method import descriptor_texts
from zsar.data.io import read_json
from zsar.models.tiny import build_tiny_llm
from zsar.stages import descriptors as d

ROOT = Path(__file__).resolve().parents[1]
PROMPTS = ROOT / "config" / "prompts" / "descriptors-v1.yaml"

VALID = {
    "attributes": ["golf club", "arms swinging", "hips turning", "ball on a tee", "green grass"],
    "descriptions": ["A person swings a club in an arc and strikes a small white ball."],
    "hierarchy": ["sports", "golf", "golf swing"],
}


def write_classes(path: Path, names: list[tuple[str, str]], splits=(1,)) -> Path:
    rows = [
        {"split": s, "class_id": i, "name": raw, "display_name": display}
        for s in splits
        for i, (raw, display) in enumerate(names)
    ]
    schema = pa.schema([("split", pa.int32()), ("class_id", pa.int32()),
                        ("name", pa.string()), ("display_name", pa.string())])
    pq.write_table(pa.Table.from_pylist(rows, schema=schema), path)
    return path


# --- tolerant parsing -----------------------------------------------------------------------


def test_parser_reads_plain_json():
    assert d.extract_json_object(json.dumps(VALID)) == (VALID, None)


def test_parser_reads_fenced_json_with_prose_around():
    text = "Sure! Here it is:\n```json\n" + json.dumps(VALID, indent=2) + "\n```\nAnything else?"
    assert d.extract_json_object(text) == (VALID, None)


def test_parser_reads_unlabelled_fence_and_prefers_it_over_braces_in_prose():
    text = "Format {like this}.\n```\n" + json.dumps(VALID) + "\n```"
    assert d.extract_json_object(text) == (VALID, None)


def test_parser_takes_first_balanced_object_amid_text():
    nested = {"attributes": ["a {brace} in a string"], "x": {"y": [1, 2]}}
    text = "The answer is " + json.dumps(nested) + " and then " + json.dumps(VALID)
    assert d.extract_json_object(text) == (nested, None)


def test_parser_survives_an_unclosed_fence():
    text = "```json\n" + json.dumps(VALID)  # ran out of tokens before the closing fence
    assert d.extract_json_object(text) == (VALID, None)


@pytest.mark.parametrize(
    "text, fragment",
    [
        ("", "empty"),
        (None, "empty"),
        ("no json here at all", "no JSON object"),
        ('{"attributes": ["a", "b",], }', "invalid JSON"),
        ("[1, 2, 3]", "no JSON object"),
    ],
)
def test_parser_reports_why_nothing_was_found(text, fragment):
    obj, error = d.extract_json_object(text)
    assert obj is None
    assert fragment in error


def test_check_answer_accepts_valid_and_cleans_whitespace():
    messy = {**VALID, "attributes": ["  golf\nclub ", *VALID["attributes"][1:]], "extra": 1}
    record, error = d.check_answer(messy)
    assert error is None
    assert record["attributes"][0] == "golf club"
    assert record["fallback"] is False and record["reason"] is None
    assert "extra" not in record


def test_check_answer_unwraps_an_object_keyed_by_the_class():
    record, error = d.check_answer({"golf swing": VALID})
    assert error is None and record["hierarchy"] == VALID["hierarchy"]


@pytest.mark.parametrize(
    "change, where",
    [
        ({"attributes": ["one", "two"]}, "attributes"),
        ({"attributes": [f"cue {i}" for i in range(11)]}, "attributes"),
        ({"attributes": ["same"] * 5}, "attributes"),
        ({"descriptions": []}, "descriptions"),
        ({"descriptions": ["a", "b", "c", "d"]}, "descriptions"),
        ({"hierarchy": ["golf swing"]}, "hierarchy"),
        ({"hierarchy": ["a", "b", "c", "d", "e"]}, "hierarchy"),
        ({"hierarchy": "sports -> golf"}, "hierarchy"),
        ({"attributes": ["ok", "ok2", "ok3", "ok4", "   "]}, "attributes/4"),
        ({"descriptions": ["x" * 401]}, "descriptions/0"),
    ],
)
def test_check_answer_names_the_failing_field(change, where):
    record, error = d.check_answer({**VALID, **change})
    assert record is None
    assert error.startswith(where)


def test_check_answer_requires_every_key():
    record, error = d.check_answer({"attributes": VALID["attributes"]})
    assert record is None and "descriptions" in error and "hierarchy" in error


def test_leaf_check_is_loose():
    assert d.leaf_names_class(["toys", "yo-yo"], "YoYo")
    assert d.leaf_names_class(["sports", "golf", "golf swinging"], "golf swing")
    assert not d.leaf_names_class(["sports", "tennis"], "golf swing")


# --- prompts --------------------------------------------------------------------------------


def test_prompt_set_is_versioned_and_its_example_is_valid():
    prompts = d.PromptSet.from_yaml(PROMPTS)
    assert prompts.version == "descriptors-v1"
    messages = prompts.messages("golf swing")
    assert [m["role"] for m in messages] == ["system", "user", "assistant", "user"]
    assert '"golf swing"' in messages[-1]["content"]
    assert d.parse_answer(messages[2]["content"])[1] is None


def test_repair_prompt_quotes_answer_and_error_and_does_not_grow(tmp_path):
    prompts = d.PromptSet.from_yaml(PROMPTS)
    first = prompts.repair_messages("golf swing", "{bad json", "invalid JSON: oops")
    assert first[-2] == {"role": "assistant", "content": "{bad json"}
    assert "invalid JSON: oops" in first[-1]["content"]
    assert "{bad json" in first[-1]["content"]
    assert len(prompts.repair_messages("golf swing", "again", "still bad")) == len(first)


def test_prompt_set_with_an_invalid_example_is_refused(tmp_path):
    data = yaml.safe_load(PROMPTS.read_text())
    data["example"]["answer"]["attributes"] = ["only one"]
    path = tmp_path / "p.yaml"
    path.write_text(yaml.safe_dump(data))
    with pytest.raises(ValueError, match="worked example"):
        d.PromptSet.from_yaml(path)


# --- the schema -----------------------------------------------------------------------------


def _document(records):
    return d.descriptors_document("x", "v1", records, {"zsar_version": "0"})


def test_schema_accepts_valid_and_fallback_records():
    records = {"golf": d.check_answer(VALID)[0], "odd": d.fallback_record("because")}
    doc = _document(records)
    d.validate_descriptors(doc)
    assert doc["summary"] == {"classes": 2, "fallbacks": 1}


@pytest.mark.parametrize(
    "record",
    [
        {**VALID, "fallback": False, "reason": "should be null"},
        {**VALID, "attributes": ["a", "b"], "fallback": False, "reason": None},
        {**d.fallback_record("x"), "reason": None},
        {**d.fallback_record("x"), "attributes": ["leftover"]},
        {**VALID, "fallback": False, "reason": None, "score": 1},
        {k: v for k, v in d.fallback_record("x").items() if k != "fallback"},
    ],
)
def test_schema_rejects_inconsistent_records(record):
    with pytest.raises(ValueError, match="schema"):
        d.validate_descriptors(_document({"golf": record}))


def test_schema_rejects_a_document_without_summary():
    doc = _document({"golf": d.fallback_record("x")})
    del doc["summary"]
    with pytest.raises(ValueError, match="summary"):
        d.validate_descriptors(doc)


# --- the file backend -----------------------------------------------------------------------


def _run_file_stage(tmp_path, curated_path, names):
    classes = write_classes(tmp_path / "classes.parquet", names, splits=(1, 2))
    out = tmp_path / "out" / "descriptors.json"
    entry = {"name": "curated", "backend": "file", "path": str(curated_path)}
    d.run_descriptor_stage(classes, out, entry, PROMPTS, max_new_tokens=8, batch_size=2,
                           repair_attempts=2, resources=tmp_path)
    return read_json(out)


def test_file_backend_missing_invalid_and_unknown_classes(tmp_path, caplog):
    curated = tmp_path / "curated.yaml"
    curated.write_text(yaml.safe_dump({
        "version": "t1",
        "classes": {
            "GolfSwing": VALID,
            "jump rope": {**VALID, "hierarchy": ["sports", "jumping rope"]},  # by display name
            "Broken": {**VALID, "attributes": ["just one"]},
            "NotInDataset": VALID,
        },
    }))
    names = [("GolfSwing", "golf swing"), ("JumpRope", "jump rope"),
             ("Broken", "broken"), ("Missing", "missing")]
    with caplog.at_level(logging.WARNING, logger="zsar.stages.descriptors"):
        doc = _run_file_stage(tmp_path, curated, names)
    d.validate_descriptors(doc)
    classes = doc["classes"]
    assert sorted(classes) == ["Broken", "GolfSwing", "JumpRope", "Missing"]
    assert classes["GolfSwing"]["attributes"] == VALID["attributes"]
    assert classes["JumpRope"]["hierarchy"] == ["sports", "jumping rope"]
    assert classes["Missing"]["fallback"] is True
    assert "'Missing'" in classes["Missing"]["reason"]
    assert str(curated) in classes["Missing"]["reason"]
    assert classes["Broken"]["fallback"] is True
    assert "'Broken'" in classes["Broken"]["reason"] and "attributes" in classes["Broken"]["reason"]
    assert doc["summary"] == {"classes": 4, "fallbacks": 2}
    assert doc["prompt_version"] == "curated:t1"
    assert doc["llm"] == "curated"
    assert "NotInDataset" in caplog.text


def test_file_backend_reads_a_plain_json_mapping(tmp_path):
    curated = tmp_path / "curated.json"
    curated.write_text(json.dumps({"GolfSwing": VALID}))
    doc = _run_file_stage(tmp_path, curated, [("GolfSwing", "golf swing")])
    assert doc["summary"] == {"classes": 1, "fallbacks": 0}
    assert doc["prompt_version"] == "curated:curated.json"


def test_output_is_deterministic(tmp_path):
    curated = tmp_path / "curated.json"
    curated.write_text(json.dumps({"GolfSwing": VALID}))
    first = _run_file_stage(tmp_path, curated, [("GolfSwing", "golf swing"), ("Other", "other")])
    second = _run_file_stage(tmp_path, curated, [("Other", "other"), ("GolfSwing", "golf swing")])
    assert first == second


def test_shipped_demo_descriptors_cover_every_demo_class(tmp_path):
    demo = pytest.importorskip("zsar.data.demo")
    registry = yaml.safe_load((ROOT / "config" / "models.yaml").read_text())
    curated = ROOT / registry["llms"]["demo-curated"]["path"]
    names = [(name, name) for name in demo.CLASSES]
    doc = _run_file_stage(tmp_path, curated, names)
    assert doc["summary"] == {"classes": len(demo.CLASSES), "fallbacks": 0}
    assert set(d.load_curated(curated)[1]) == set(demo.CLASSES)


def test_unknown_backend_is_named(tmp_path):
    classes = write_classes(tmp_path / "classes.parquet", [("A", "a")])
    with pytest.raises(ValueError, match="unknown backend 'nope'"):
        d.run_descriptor_stage(classes, tmp_path / "o.json", {"name": "x", "backend": "nope"},
                               PROMPTS, 8, 1, 0, tmp_path)


# --- texts for the embedding stage ----------------------------------------------------------

TEMPLATES = {"attribute": "{class}, which involves {text}", "description": "{class}: {text}",
             "hierarchy": "{text}"}


def test_descriptor_texts_apply_templates_and_join_the_hierarchy():
    record = d.check_answer(VALID)[0]
    texts = descriptor_texts(record, "golf swing", TEMPLATES)
    assert texts["attribute"] == [f"golf swing, which involves {a}" for a in VALID["attributes"]]
    assert texts["description"] == [f"golf swing: {VALID['descriptions'][0]}"]
    assert texts["hierarchy"] == ["sports → golf → golf swing"]
    templates = {**TEMPLATES, "hierarchy": "{class} in {text}"}
    custom = descriptor_texts(record, "golf swing", templates)
    assert custom["hierarchy"] == ["golf swing in sports → golf → golf swing"]


def test_descriptor_texts_of_a_fallback_are_empty():
    texts = descriptor_texts(d.fallback_record("x"), "golf swing", TEMPLATES)
    assert texts == {"attribute": [], "description": [], "hierarchy": []}


# --- the tiny random LLM through the real transformers loader --------------------------------


def test_tiny_llm_garbage_falls_back_with_counts(tmp_path, caplog, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("TRANSFORMERS_OFFLINE", "1")
    build_tiny_llm({"family": "causal_lm", "seed": 0}, tmp_path / "models" / "tiny-llm")
    names = [("GolfSwing", "golf swing"), ("JumpRope", "jump rope"), ("YoYo", "yo yo")]
    classes = write_classes(tmp_path / "classes.parquet", names)
    out = tmp_path / "descriptors" / "tiny-llm.json"
    entry = {"name": "tiny-llm", "backend": "transformers", "build": {"family": "causal_lm"}}
    with caplog.at_level(logging.INFO, logger="zsar.stages.descriptors"):
        d.run_descriptor_stage(classes, out, entry, PROMPTS, max_new_tokens=12, batch_size=2,
                               repair_attempts=1, resources=tmp_path, device="cpu")
    doc = read_json(out)
    d.validate_descriptors(doc)
    assert doc["summary"] == {"classes": 3, "fallbacks": 3}
    assert doc["prompt_version"] == "descriptors-v1"
    assert doc["provenance"]["generation"] == {
        "max_new_tokens": 12, "temperature": 0.0, "repair_attempts": 1}
    for record in doc["classes"].values():
        assert record["fallback"] is True
        assert record["reason"].startswith("no valid answer after 1 repair attempt(s)")
    # Every class was first asked, then sent the repair prompt once.
    assert caplog.text.count("repair 1/1") == 3


def test_tiny_llm_batched_generation_matches_one_by_one(tmp_path, monkeypatch):
    """Left padding: a short request batched with a long one gets the answer it gets alone."""
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    build_tiny_llm({"seed": 1}, tmp_path / "models" / "tiny-llm")
    prompts = d.PromptSet.from_yaml(PROMPTS)
    settings = d.StageSettings(prompts=prompts, max_new_tokens=8, batch_size=3,
                               repair_attempts=0, resources=str(tmp_path), device="cpu")
    completer = d.transformers_completer({"name": "tiny-llm"}, settings)
    conversations = [
        prompts.messages("yo yo"),
        prompts.repair_messages("playing the cello in an orchestra", "x" * 300, "too long"),
        prompts.messages("golf swing"),
    ]
    batched = [r.text for r in completer.complete(conversations)]
    alone = [completer.complete([c])[0].text for c in conversations]
    assert batched == alone
    assert all(isinstance(t, str) for t in batched)


def test_a_kind_added_to_the_method_needs_no_schema_edit(monkeypatch):
    """A new kind in zsar.core.method.KINDS is asked for, checked and embedded with no
    other edit."""
    import zsar.core.method as method
    import zsar.data.descriptor_records as records

    kinds = {**method.KINDS, "object": method.TextKind(
        "object", "objects", "objects the action involves", 1.0, template="{class} with {text}")}
    fields = {k: v.field for k, v in kinds.items() if v.field}
    for module in (d, records):
        monkeypatch.setattr(module, "KIND_FIELDS", fields)
    for module in (records, method):
        monkeypatch.setattr(module, "KINDS", kinds)
        monkeypatch.setattr(module, "DESCRIPTOR_KINDS", tuple(fields))
    schema = records._with_every_kind(
        json.loads(json.dumps(records.descriptors_schema.__wrapped__())))
    assert "objects" in schema["$defs"]["answer"]["required"]
    assert schema["$defs"]["class_record"]["then"]["properties"]["objects"] == {"maxItems": 0}
    record = {"attributes": ["a"], "descriptions": ["b"], "hierarchy": ["c", "d"],
              "objects": ["a ball"]}
    templates = {k: kinds[k].template for k in method.DESCRIPTOR_KINDS}
    texts = descriptor_texts(record, "kick", templates)
    assert texts["object"] == ["kick with a ball"]
    assert d.fallback_record("x")["objects"] == []
