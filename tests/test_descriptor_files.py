"""Descriptor files made elsewhere: formats recognised from content, names matched despite
their spelling, several sources merged, the result read by the `file` backend; export to
CuPL JSON and back; the real benchmark label lists."""

from __future__ import annotations

import codecs
import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import zsar
from zsar.core.method import DESCRIPTOR_KINDS, descriptor_texts
from zsar.data.adapters import read_class_list, words_display_name
from zsar.data.descriptor_classes import read_label_classes
from zsar.data.descriptor_export import export_descriptors, read_templates
from zsar.data.descriptor_formats import DescriptorFileError, detect_json_format, json_entries
from zsar.data.descriptor_sources import Source, import_descriptor_sources
from zsar.data.io import read_json
from zsar.stages import descriptors as d

ROOT = Path(__file__).resolve().parents[1]
PROMPTS = ROOT / "config" / "prompts" / "descriptors-v1.yaml"
CONFIG = ROOT / "config" / "config.yaml"
BENCHMARK_LABELS = ROOT.parent / "shared" / "benchmark-lists" / "vificlip-labels"
TEMPLATES = read_templates(CONFIG, None)

UCF_FEW = ["ApplyEyeMakeup", "HandstandPushups", "YoYo", "brush hair"]


def labels_file(tmp_path: Path, names=UCF_FEW) -> Path:
    path = tmp_path / "labels.csv"
    path.write_text("id,name\n" + "".join(f"{i},{n}\n" for i, n in enumerate(names)))
    return path


def write(tmp_path: Path, name: str, content: str | bytes) -> Path:
    path = tmp_path / name
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content, encoding="utf-8")
    return path


def import_to(tmp_path, sources, names=UCF_FEW):
    out = tmp_path / "out.json"
    result = import_descriptor_sources(labels_file(tmp_path, names), sources, out)
    return result, read_json(out)


def write_classes_parquet(path: Path, names, splits=(1,)) -> Path:
    rows = [{"split": s, "class_id": i, "name": raw, "display_name": words_display_name(raw)}
            for s in splits for i, raw in enumerate(names)]
    schema = pa.schema([("split", pa.int32()), ("class_id", pa.int32()),
                        ("name", pa.string()), ("display_name", pa.string())])
    pq.write_table(pa.Table.from_pylist(rows, schema=schema), path)
    return path


# --- the four shapes ------------------------------------------------------------------------


def test_index_keyed_json_maps_by_label_order(tmp_path):
    source = write(tmp_path, "idx.json", json.dumps(
        {"0": ["eyeliner brush", "mirror"], "1": "upside down", "2": ["spinning toy"],
         "3": ["comb", "long hair"]}))
    result, doc = import_to(tmp_path, [Source("attributes", str(source))])
    assert result.sources[0].format == "json-index"
    assert doc["classes"]["ApplyEyeMakeup"]["attributes"] == ["eyeliner brush", "mirror"]
    assert doc["classes"]["HandstandPushups"]["attributes"] == ["upside down"]
    assert doc["classes"]["brush hair"]["attributes"] == ["comb", "long hair"]
    assert result.summary_line() == "classes=4 matched=4 fallbacks=0"


@pytest.mark.parametrize(
    "keys, fragment",
    [
        (range(5), "with 5 classes (indices 0..4), but"),  # a file for a longer class list
        (range(3), "with 3 classes (indices 0..2), but"),  # a shorter one: never partial
        (range(1, 5), "(indices 1..4)"),  # 1-based: same count, shifted by one
    ],
)
def test_index_keyed_json_for_another_class_list_is_refused(tmp_path, keys, fragment):
    source = write(tmp_path, "other.json", json.dumps({str(k): ["x"] for k in keys}))
    with pytest.raises(DescriptorFileError) as err:
        import_to(tmp_path, [Source("descriptions", str(source))])
    message = str(err.value)
    assert message.startswith(str(source))
    assert fragment in message and "has 4 classes (indices 0..3)" in message


def test_name_keyed_json_matches_misspelt_names(tmp_path):
    source = write(tmp_path, "names.json", json.dumps({
        "apply_eye_makeup": "A person paints eyeliner along the lash line.",
        "Hand Stand Pushups": ["Upside down against a wall, the arms bend and push."],
        "yo-yo": ["A spool on a string drops and climbs back."],
        "Brush Hair": "Someone pulls a brush through long hair.",
        "Basketball Dunk": ["not in this class list"],
    }))
    result, doc = import_to(tmp_path, [Source("descriptions", str(source))])
    assert result.sources[0].format == "json-names"
    classes = doc["classes"]
    assert classes["HandstandPushups"]["descriptions"] == [
        "Upside down against a wall, the arms bend and push."]
    assert classes["brush hair"]["descriptions"] == ["Someone pulls a brush through long hair."]
    assert classes["YoYo"]["verbatim"] == []
    assert result.sources[0].match.unmatched == ["Basketball Dunk"]
    hows = doc["provenance"]["matches"]
    assert hows["HandstandPushups"] == [
        {"source": 0, "name": "Hand Stand Pushups", "how": "normalised"}]
    assert any("Basketball Dunk" in w for w in result.warnings())


def test_a_name_matching_two_classes_is_an_error_naming_both(tmp_path):
    names = ["push-ups", "pushups", "Archery"]
    ambiguous = write(tmp_path, "amb.json", json.dumps({"Push Ups": ["x"], "Archery": ["y"]}))
    with pytest.raises(DescriptorFileError) as err:
        import_to(tmp_path, [Source("descriptions", str(ambiguous))], names)
    message = str(err.value)
    assert message.startswith(str(ambiguous))
    assert "'Push Ups'" in message and "'push-ups'" in message and "'pushups'" in message
    # An exact spelling is not ambiguous: exact matches come first.
    exact = write(tmp_path, "exact.json", json.dumps({"pushups": ["x"], "push-ups": ["z"]}))
    _, doc = import_to(tmp_path, [Source("descriptions", str(exact))], names)
    assert doc["classes"]["pushups"]["descriptions"] == ["x"]
    assert doc["classes"]["push-ups"]["descriptions"] == ["z"]


def test_csv_without_header_with_bom_quotes_and_a_row_per_text(tmp_path):
    text = ('"Apply Eye Makeup","a small brush, held close to the eye"\n'
            "apply_eye_makeup,mirror\n"
            '\n'
            'HANDSTAND PUSHUPS,"arms, straight, then bent"\n'
            'Brush Hair,comb, then brush\n')  # unquoted commas belong to the text
    source = write(tmp_path, "cues.csv", codecs.BOM_UTF8 + text.encode())
    result, doc = import_to(tmp_path, [Source("attributes", str(source))])
    assert result.sources[0].format == "csv-names"
    classes = doc["classes"]
    assert classes["ApplyEyeMakeup"]["attributes"] == [
        "a small brush, held close to the eye", "mirror"]
    assert classes["HandstandPushups"]["attributes"] == ["arms, straight, then bent"]
    assert classes["brush hair"]["attributes"] == ["comb, then brush"]
    assert classes["YoYo"]["fallback"] is True
    assert result.summary_line() == "classes=4 matched=3 fallbacks=1"
    assert result.warnings() == [
        f"{source}: 1 class(es) are named in more than one spelling, e.g. 'Apply Eye Makeup', "
        "'apply_eye_makeup'; their texts are concatenated"]


def test_csv_with_header_and_index_keyed_csv(tmp_path):
    named = write(tmp_path, "h.csv", "class,description\nYoYo,A toy goes up and down.\n")
    result, doc = import_to(tmp_path, [Source("descriptions", str(named))])
    assert result.sources[0].entries == 1
    assert doc["classes"]["YoYo"]["descriptions"] == ["A toy goes up and down."]
    indexed = write(tmp_path, "i.csv", "0,a\n1,b\n2,c\n3,d\n3,e\n")
    result, doc = import_to(tmp_path, [Source("descriptions", str(indexed))])
    assert result.sources[0].format == "csv-index"
    assert doc["classes"]["brush hair"]["descriptions"] == ["d", "e"]


def test_cupl_is_recognised_and_embedded_without_the_template(tmp_path):
    prompts = {
        "apply eye makeup": ["A video of a person applying eye makeup with a brush.",
                             "Applying eye makeup: a close view of an eye and a pencil."],
        "Handstand Pushups": ["Handstand pushups, done against a wall."],
    }
    source = write(tmp_path, "cupl.json", json.dumps(prompts))
    result, doc = import_to(tmp_path, [Source("descriptions", str(source))])
    assert result.sources[0].format == "cupl"
    record = doc["classes"]["ApplyEyeMakeup"]
    assert record["verbatim"] == ["descriptions"]
    texts = descriptor_texts(record, "apply eye makeup", TEMPLATES)
    assert texts["description"] == prompts["apply eye makeup"]  # not "apply eye makeup: ..."
    # Forced to json-names, the same file holds texts for the template.
    _, forced = import_to(tmp_path, [Source.parse(f"descriptions:json-names={source}")])
    record = forced["classes"]["ApplyEyeMakeup"]
    assert record["verbatim"] == []
    assert descriptor_texts(record, "apply eye makeup", TEMPLATES)["description"][0] == (
        "apply eye makeup: A video of a person applying eye makeup with a brush.")


def test_cues_that_do_not_name_their_class_are_not_cupl():
    obj = {"ApplyEyeMakeup": ["brush", "mirror", "eyelid"], "YoYo": ["string", "spool"]}
    entries = json_entries(obj, "x.json")
    assert detect_json_format(obj, entries) == "json-names"


@pytest.mark.parametrize(
    "content, fragment",
    [
        (b"", "empty file"),
        (b"  \n\n", "empty file"),
        (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR", "not a text file"),
        (bytes([0xC3, 0x28, 0x41, 0x42]), "not UTF-8 text"),
        (b'{"YoYo": ["a", "b"],}', "invalid JSON"),
        (b'["YoYo", "a"]', "got a list"),
        (b'{"YoYo": "a", "YoYo": "b"}', "'YoYo' appears twice"),
        (b'{"YoYo": {"attributes": ["a"]}}', "expected a string or a list of strings"),
        (b'{"YoYo": ["a", 3]}', "item 1 is not a string (int)"),
        (b"{}", "no entries"),
        (b"just one sentence per line\nwith no second column\n", "neither JSON nor a two-column"),
    ],
)
def test_bad_files_give_one_named_error(tmp_path, content, fragment):
    source = write(tmp_path, "bad.txt", content)
    with pytest.raises(DescriptorFileError) as err:
        import_to(tmp_path, [Source("descriptions", str(source))])
    assert str(err.value).startswith(str(source))
    assert fragment in str(err.value)


def test_utf16_with_bom_is_read(tmp_path):
    source = write(tmp_path, "u16.csv", "YoYo,spool on a string\n".encode("utf-16"))
    _, doc = import_to(tmp_path, [Source("attributes", str(source))])
    assert doc["classes"]["YoYo"]["attributes"] == ["spool on a string"]


def test_label_files_that_do_not_parse_are_named(tmp_path):
    source = write(tmp_path, "s.json", json.dumps({"YoYo": ["x"]}))
    bad = write(tmp_path, "labels.csv", "id,name\n0,A\n2,B\n")  # ids must run 0..K-1
    with pytest.raises(DescriptorFileError, match=f"^{bad}"):
        import_descriptor_sources(bad, [Source("descriptions", str(source))],
                                  tmp_path / "o.json")
    with pytest.raises(DescriptorFileError, match="no such file"):
        read_label_classes(tmp_path / "missing.csv")
    not_parquet = write(tmp_path, "c.parquet", "not parquet")
    with pytest.raises(DescriptorFileError, match="not a Parquet file"):
        read_label_classes(not_parquet)


@pytest.mark.parametrize("spec", ["descriptions", "colour=x.json", "descriptions:yaml=x.json"])
def test_bad_source_specs_are_named(spec):
    with pytest.raises(DescriptorFileError, match=spec.split("=")[0].split(":")[0]):
        Source.parse(spec)


# --- several sources ------------------------------------------------------------------------


def test_same_kind_twice_is_concatenated_in_order_without_duplicates(tmp_path):
    first = write(tmp_path, "a.json", json.dumps({"YoYo": ["spool", "string"]}))
    second = write(tmp_path, "b.csv", "yo yo,string\nyo yo,wrist flick\n")
    result, doc = import_to(tmp_path, [Source("attributes", str(first)),
                                       Source("attributes", str(second))])
    assert doc["classes"]["YoYo"]["attributes"] == ["spool", "string", "wrist flick"]
    assert [m["source"] for m in doc["provenance"]["matches"]["YoYo"]] == [0, 1]


def test_hierarchy_from_lists_strings_and_rows_and_first_source_wins(tmp_path):
    listed = write(tmp_path, "h1.json", json.dumps({
        "YoYo": ["toys", "string toys", "yo-yo"], "Apply Eye Makeup": "personal care > makeup"}))
    rows = write(tmp_path, "h2.csv", "HandstandPushups,exercise\nHandstandPushups,bodyweight\n"
                                     "YoYo,games → yo-yo\n")
    result, doc = import_to(tmp_path, [Source("hierarchy", str(listed)),
                                       Source("hierarchy", str(rows))])
    classes = doc["classes"]
    assert classes["YoYo"]["hierarchy"] == ["toys", "string toys", "yo-yo"]
    assert classes["ApplyEyeMakeup"]["hierarchy"] == ["personal care", "makeup"]
    assert classes["HandstandPushups"]["hierarchy"] == ["exercise", "bodyweight"]
    assert result.report.conflicts == {"YoYo": ["games → yo-yo"]}
    assert doc["provenance"]["hierarchy_conflicts"] == {"YoYo": ["games → yo-yo"]}
    assert any("'YoYo'" in w and "first source" in w for w in result.warnings())


def test_a_hierarchy_of_leaves_naming_their_class_is_not_read_as_cupl(tmp_path):
    leaves = write(tmp_path, "leaves.json", json.dumps(
        {"YoYo": ["yo-yo"], "ApplyEyeMakeup": ["apply eye makeup"]}))
    result, doc = import_to(tmp_path, [Source("hierarchy", str(leaves))])
    assert result.sources[0].format == "json-names"
    assert doc["classes"]["YoYo"]["hierarchy"] == ["yo-yo"]
    _, as_descriptions = import_to(tmp_path, [Source("descriptions", str(leaves))])
    assert as_descriptions["classes"]["YoYo"]["verbatim"] == ["descriptions"]


def test_cupl_and_template_texts_of_one_kind_are_refused(tmp_path):
    cupl = write(tmp_path, "c.json", json.dumps({"YoYo": ["A yo yo spins on its string."]}))
    plain = write(tmp_path, "p.json", json.dumps({"YoYo": "It spins."}))
    with pytest.raises(DescriptorFileError, match="complete prompts"):
        import_to(tmp_path, [Source("descriptions", str(cupl)),
                             Source("descriptions", str(plain))])
    with pytest.raises(DescriptorFileError, match="not hierarchy levels"):
        import_to(tmp_path, [Source("hierarchy", str(cupl), "cupl")])


def test_uncovered_classes_fall_back_with_a_reason(tmp_path):
    source = write(tmp_path, "s.json", json.dumps({"YoYo": ["spool"], "Brush Hair": []}))
    result, doc = import_to(tmp_path, [Source("attributes", str(source))])
    classes = doc["classes"]
    assert classes["ApplyEyeMakeup"]["fallback"] is True
    assert "no source names class 'ApplyEyeMakeup'" in classes["ApplyEyeMakeup"]["reason"]
    assert str(source) in classes["ApplyEyeMakeup"]["reason"]
    assert "give it no text" in classes["brush hair"]["reason"]
    assert classes["brush hair"]["attributes"] == []
    assert result.summary_line() == "classes=4 matched=2 fallbacks=3"
    assert doc["summary"] == {"classes": 4, "fallbacks": 3}


def test_document_records_sources_and_passes_the_schema(tmp_path):
    a = write(tmp_path, "a.json", json.dumps({"0": ["x"], "1": ["y"], "2": ["z"], "3": ["w"]}))
    b = write(tmp_path, "b.csv", "YoYo,A yo-yo spins.\n")
    result, doc = import_to(tmp_path, [Source("attributes", str(a)),
                                       Source("descriptions", str(b))])
    d.validate_descriptors(doc)
    sources = doc["provenance"]["sources"]
    assert [(s["kind"], s["format"], s["path"]) for s in sources] == [
        ("attributes", "json-index", str(a)), ("descriptions", "csv-names", str(b))]
    assert sources[0]["sha256"] == hashlib.sha256(a.read_bytes()).hexdigest()
    assert doc["provenance"]["labels"]["classes"] == 4
    assert doc["prompt_version"] == result.version and result.version.startswith("import-")
    for key in ("zsar_version", "git_commit", "config_hash", "packages"):
        assert key in doc["provenance"]
    # The same files give the same version; a changed file a new one.
    _, again = import_to(tmp_path, [Source("attributes", str(a)),
                                    Source("descriptions", str(b))])
    assert again == doc
    b.write_text("YoYo,A yo-yo climbs.\n")
    _, changed = import_to(tmp_path, [Source("attributes", str(a)),
                                      Source("descriptions", str(b))])
    assert changed["prompt_version"] != doc["prompt_version"]


def test_imported_records_relax_only_the_counts_of_an_answer():
    imported = {"attributes": ["one cue"], "descriptions": [], "hierarchy": [],
                "fallback": False, "reason": None, "imported": True, "verbatim": []}
    d.validate_descriptors(d.descriptors_document("x", "v", {"a": imported}, {}))
    for broken in ({**imported, "attributes": []},  # no text at all: must be a fallback
                   {**imported, "attributes": [" "]},
                   {**imported, "verbatim": ["captions"]},
                   {**imported, "imported": False}):  # then it is an answer: 5-10 cues
        with pytest.raises(ValueError, match="schema"):
            d.validate_descriptors(d.descriptors_document("x", "v", {"a": broken}, {}))


# --- the `file` backend reads the result; `sources:` imports inside the stage ---------------


def run_file_stage(tmp_path, entry, names, tag):
    classes = write_classes_parquet(tmp_path / f"classes-{tag}.parquet", names, splits=(1, 2))
    out = tmp_path / f"descriptors-{tag}.json"
    d.run_descriptor_stage(classes, out, {"name": "imported", "backend": "file", **entry},
                           PROMPTS, max_new_tokens=8, batch_size=2, repair_attempts=0,
                           resources=tmp_path)
    return read_json(out)


def test_imported_file_and_sources_entry_give_the_same_descriptors(tmp_path):
    cupl = write(tmp_path, "cupl.json", json.dumps({
        "apply eye makeup": ["A video of a person applying eye makeup."],
        "Hand Stand Pushups": ["A person does handstand pushups against a wall."]}))
    cues = write(tmp_path, "cues.json", json.dumps(
        {"0": ["brush"], "1": ["wall", "arms"], "2": ["spool"], "3": ["comb"]}))
    tree = write(tmp_path, "tree.csv", "yo_yo,toys > yo-yo\n")
    sources = [{"kind": "descriptions", "path": str(cupl)},
               {"kind": "attributes", "path": str(cues)},
               {"kind": "hierarchy", "path": str(tree)}]
    import_descriptor_sources(labels_file(tmp_path), sources, tmp_path / "imported.json")
    by_file = run_file_stage(tmp_path, {"path": str(tmp_path / "imported.json")}, UCF_FEW, "a")
    by_sources = run_file_stage(tmp_path, {"sources": sources}, UCF_FEW, "b")
    d.validate_descriptors(by_file)
    assert by_file["classes"] == by_sources["classes"]
    assert by_file["prompt_version"] == by_sources["prompt_version"]
    assert by_file["prompt_version"].startswith("curated:import-")
    assert by_sources["provenance"]["generation"]["sources"][1]["format"] == "json-index"
    assert by_file["classes"]["YoYo"]["hierarchy"] == ["toys", "yo-yo"]
    assert by_file["summary"] == {"classes": 4, "fallbacks": 0}


def test_file_backend_keeps_an_imported_fallback_and_its_reason(tmp_path):
    source = write(tmp_path, "s.json", json.dumps({"YoYo": ["spool"]}))
    import_descriptor_sources(labels_file(tmp_path), [f"attributes={source}"],
                              tmp_path / "imported.json")
    doc = run_file_stage(tmp_path, {"path": str(tmp_path / "imported.json")}, UCF_FEW, "c")
    assert doc["classes"]["YoYo"]["attributes"] == ["spool"]
    assert doc["classes"]["ApplyEyeMakeup"]["fallback"] is True
    assert doc["classes"]["ApplyEyeMakeup"]["reason"].startswith("no source names class")
    assert doc["summary"] == {"classes": 4, "fallbacks": 3}


def test_sources_keyed_by_index_need_one_class_order(tmp_path):
    cues = write(tmp_path, "cues.json", json.dumps({"0": ["a"], "1": ["b"]}))
    classes = tmp_path / "classes.parquet"
    rows = [{"split": 1, "class_id": 0, "name": "A", "display_name": "a"},
            {"split": 1, "class_id": 1, "name": "B", "display_name": "b"},
            {"split": 2, "class_id": 0, "name": "B", "display_name": "b"},
            {"split": 2, "class_id": 1, "name": "A", "display_name": "a"}]
    pq.write_table(pa.Table.from_pylist(rows), classes)
    with pytest.raises(DescriptorFileError, match="splits with different class lists"):
        import_descriptor_sources(classes, [f"attributes={cues}"], tmp_path / "o.json")


# --- export and back ------------------------------------------------------------------------

VALID = {
    "attributes": ["golf club", "arms swinging", "hips turning", "ball on a tee", "green grass"],
    "descriptions": ["A person swings a club in an arc and strikes a small white ball."],
    "hierarchy": ["sports", "golf", "golf swing"],
}


def llm_document(tmp_path):
    """A descriptors document as the stage writes it: two described classes, one fallback."""
    curated = write(tmp_path, "curated.json", json.dumps({
        "GolfSwing": VALID,
        "YoYo": {"attributes": ["spool", "string", "wrist flick", "toy", "up and down"],
                 "descriptions": ["A toy spool drops on its string and climbs back."],
                 "hierarchy": ["toys", "yo-yo"]}}))
    results = tmp_path / "results" / "ucf" / "descriptors"
    results.mkdir(parents=True)
    classes = write_classes_parquet(results.parent / "classes.parquet",
                                    ["GolfSwing", "YoYo", "Missing"])
    d.run_descriptor_stage(classes, results / "llm.json",
                           {"name": "llm", "backend": "file", "path": str(curated)},
                           PROMPTS, 8, 2, 0, tmp_path)
    return results / "llm.json"


def flat_texts(record, display):
    texts = descriptor_texts(record, display, TEMPLATES)
    return [t for kind in DESCRIPTOR_KINDS for t in texts[kind]]


def test_export_then_import_gives_every_class_the_same_sentences(tmp_path):
    source = llm_document(tmp_path)
    exported = tmp_path / "cupl.json"
    classes, sentences, fallbacks = export_descriptors(source, exported, "cupl", TEMPLATES)
    prompts = read_json(exported)
    assert (classes, fallbacks) == (3, ["Missing"]) and sorted(prompts) == ["GolfSwing", "YoYo"]
    assert sentences == sum(len(v) for v in prompts.values()) == 7 + 7
    assert prompts["GolfSwing"][0] == "golf swing, which involves golf club"
    assert prompts["GolfSwing"][-1] == "sports → golf → golf swing"

    labels = source.parent.parent / "classes.parquet"
    result = import_descriptor_sources(labels, [f"descriptions={exported}"],
                                       tmp_path / "back.json")
    assert result.sources[0].format == "cupl"
    original, back = read_json(source)["classes"], read_json(tmp_path / "back.json")["classes"]
    for name, display in [("GolfSwing", "golf swing"), ("YoYo", "yo yo")]:
        # What the workflow embeds for the class (besides its name) is unchanged; only the
        # kinds are gone: every sentence is now a description, embedded as it is.
        assert flat_texts(back[name], display) == flat_texts(original[name], display)
        assert flat_texts(back[name], display) == prompts[name]
        assert back[name]["descriptions"] == prompts[name]
    assert back["Missing"]["fallback"] is True
    # And exporting the imported file writes the very same CuPL file.
    again = tmp_path / "again.json"
    export_descriptors(tmp_path / "back.json", again, "cupl", TEMPLATES, classes=labels)
    assert again.read_bytes() == exported.read_bytes()


def test_export_options_and_errors(tmp_path):
    source = llm_document(tmp_path)
    out = tmp_path / "x.json"
    export_descriptors(source, out, "cupl", TEMPLATES, keys="display", fallback_name=True)
    prompts = read_json(out)
    assert sorted(prompts) == ["golf swing", "missing", "yo yo"]
    assert prompts["missing"] == ["missing"]  # the name prompt the workflow scores it by
    other = labels_file(tmp_path, ["GolfSwing", "Archery"])
    with pytest.raises(DescriptorFileError, match="not in"):
        export_descriptors(source, out, "cupl", TEMPLATES, classes=other)
    lonely = write(tmp_path, "lonely.json", json.dumps({"GolfSwing": VALID}))
    with pytest.raises(DescriptorFileError, match="pass --classes"):
        export_descriptors(lonely, out, "cupl", TEMPLATES)
    bad_templates = write(tmp_path, "t.yaml", "attribute: '{class}: {text}'\n")
    with pytest.raises(DescriptorFileError, match="no template for description, hierarchy"):
        read_templates(None, bad_templates)


def run_cli(*args, cwd=None):
    env = {**os.environ, "PYTHONPATH": str(Path(zsar.__file__).parents[1])}
    return subprocess.run([sys.executable, "-m", "zsar.cli", "descriptors", *map(str, args)],
                          capture_output=True, text=True, env=env, cwd=cwd, timeout=120)


def test_cli_export_and_bad_input_exit_codes(tmp_path):
    source = llm_document(tmp_path)
    done = run_cli("export", source, "--out", tmp_path / "c.json", "--config", CONFIG)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[-1] == "classes=3 sentences=14 fallbacks=1"
    assert "'Missing'" in done.stderr
    binary = write(tmp_path, "weights.bin", bytes(range(256)) * 4)
    done = run_cli("import", "--labels", labels_file(tmp_path), "--out", tmp_path / "o.json",
                   f"descriptions={binary}")
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [
        f"zsar descriptors import: error: {binary}: not a text file (it contains NUL bytes)"]
    assert not (tmp_path / "o.json").exists()


# --- the real benchmark label lists -----------------------------------------------------------

REAL_LISTS = {
    "ucf101": ("ucf_101_labels.csv", 101),
    "hmdb51": ("hmdb_51_labels.csv", 51),
    "kinetics400": ("kinetics_400_labels.csv", 400),
    "ssv2": ("ssv2_labels.csv", 174),
}
# How published files spell class names, cycled over the classes.
SPELLINGS = [
    lambda n: words_display_name(n).title(),  # "Apply Eye Makeup"
    lambda n: words_display_name(n).replace(" ", "_"),  # "apply_eye_makeup"
    lambda n: words_display_name(n).upper(),  # "APPLY EYE MAKEUP"
    lambda n: "".join(w.capitalize() for w in words_display_name(n).split()),  # "ApplyEyeMakeup"
    lambda n: words_display_name(n).replace(" ", "-"),  # "apply-eye-makeup"
]
KNOWN_MISSPELLINGS = {"HandstandPushups": "Hand Stand Pushups", "YoYo": "Yo Yo",
                      "brush hair": "Brush_Hair"}


def misspelt(names):
    out = [KNOWN_MISSPELLINGS.get(n, SPELLINGS[i % len(SPELLINGS)](n))
           for i, n in enumerate(names)]
    differ = sum(a != b for a, b in zip(out, names, strict=True))
    assert differ >= 0.6 * len(names)  # the test really exercises the normalised match
    return out


@pytest.fixture(scope="module")
def real_labels():
    if not BENCHMARK_LABELS.is_dir():
        pytest.skip(f"the real label lists are not at {BENCHMARK_LABELS} (CI has them in "
                    "../shared beside the clone)")
    return BENCHMARK_LABELS


def write_published_files(folder: Path, names: list[str]) -> dict[str, Path]:
    """One file in each shape, as a peer project might publish them for this class list."""
    folder.mkdir(parents=True, exist_ok=True)
    spelt = misspelt(names)
    descriptions = {s: [f"A clip in which someone is busy with {words_display_name(n)}.",
                        "The whole body is visible in the frame."]
                    for s, n in zip(spelt, names, strict=True)}
    cupl = {words_display_name(n).title(): [
        f"A video of a person doing {words_display_name(n)}.",
        f"{words_display_name(n).capitalize()}, seen from the side."] for n in names}
    rows = "".join(f'"{s}","a cue for {words_display_name(n)}, with a comma"\n'
                   for s, n in zip(reversed(spelt), reversed(names), strict=True))
    files = {
        "index": folder / "hierarchy.json",
        "names": folder / "descriptions.json",
        "csv": folder / "attributes.csv",
        "cupl": folder / "cupl.json",
    }
    files["index"].write_text(json.dumps(
        {str(i): ["human action", words_display_name(n)] for i, n in enumerate(names)}))
    files["names"].write_text(json.dumps(descriptions, indent=1))
    files["csv"].write_bytes(codecs.BOM_UTF8 + rows.encode())
    files["cupl"].write_text(json.dumps(cupl))
    return files


@pytest.mark.parametrize("dataset", sorted(REAL_LISTS))
def test_real_label_lists_match_every_class(tmp_path, real_labels, dataset):
    filename, count = REAL_LISTS[dataset]
    labels = real_labels / filename
    names = read_class_list(labels)
    files = write_published_files(tmp_path / "published", names)
    result = import_descriptor_sources(
        labels, [f"attributes={files['csv']}", f"descriptions={files['names']}",
               f"hierarchy={files['index']}"], tmp_path / "imported.json")
    assert result.summary_line() == f"classes={count} matched={count} fallbacks=0"
    assert [s.format for s in result.sources] == ["csv-names", "json-names", "json-index"]
    doc = read_json(tmp_path / "imported.json")
    for i, name in enumerate(names):  # every text went to its own class
        record = doc["classes"][name]
        assert record["hierarchy"] == ["human action", words_display_name(name)], i
        assert words_display_name(name) in record["descriptions"][0]
        assert record["attributes"] == [f"a cue for {words_display_name(name)}, with a comma"]
    done = run_cli("import", "--labels", labels, "--out", tmp_path / "cupl-imported.json",
                   f"descriptions={files['cupl']}")
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert "format=cupl" in lines[0]
    assert lines[-1] == f"classes={count} matched={count} fallbacks=0"
