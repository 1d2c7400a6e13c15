"""Results paths come from the stage table only (issue #25, acceptance 3).

Every workflow output path is a template of zsar.pipeline.stage_table; a module that spells
one itself (`f"{results}/{dataset}/failures.parquet"`, `results / dataset / "metrics"`,
`glob("*/metrics/*/*.json")`) goes stale when the table changes. The scan reads src/zsar with
`ast`, so docstrings (and comments, which ast does not see) may still describe the layout.
The round-trip tests hold the table's `parse_path` to its `path` for every output.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

from zsar.pipeline.results_files import find
from zsar.pipeline.stage_table import RESULTS, STAGES, parse_path, path, template, wildcards_of

PACKAGE = Path(__file__).resolve().parents[1] / "src" / "zsar"
TABLE = PACKAGE / "pipeline" / "stage_table.py"

SAMPLE_VALUES = {
    "dataset": "ucf101", "backbone": "vit-b-16", "run": "full_lambda0.5", "shard": "000-of-004",
    "sampling": "tsn8_s256_q90", "llm": "llm-a", "captioner": "cap-b", "model": "model-c",
}  # fmt: skip


def _results_templates() -> list[list[str]]:
    """The segments of every output template under the results folder."""
    return [text.split("/") for stage in STAGES.values() for text in stage.outputs.values()
            if text.startswith(RESULTS + "/")]


def results_segments() -> set[str]:
    """The literal parts of the results templates: folder and file names ("metrics",
    "classes.parquet"), each a path segment without a wildcard."""
    return {part for parts in _results_templates() for part in parts if "{" not in part}


def results_names() -> set[str]:
    """The names a pathlib join spells a results path with: the templates' file names and
    the folders right under results/ or results/DATASET/ ("metrics", "descriptors"); a
    folder deeper down ("videos") is too common a word to stand for one alone."""
    names = set()
    for parts in _results_templates():
        rest = parts[2:] if parts[1] == "{dataset}" else parts[1:]
        names |= {part for part in (rest[0], parts[-1]) if "{" not in part}
    return names


def _segment_pattern(segments: set[str]) -> re.Pattern[str]:
    """A segment joined to more path by a slash, on either side ("/metrics/", "metrics/*",
    "{x}/failures.parquet", "see results/ucf101/...")."""
    names = "|".join(sorted(map(re.escape, segments), key=len, reverse=True))
    # "frames/s" and "videos/s" are rates in log lines, not folders.
    return re.compile(rf"/(?:{names})(?=/|$)|(?:^|(?<=[^\w.-]))(?:{names})/(?!s\b)")


# A layout described with placeholders ("results/DATASET/descriptors/LLM.json" in a help
# text) is prose, as in a docstring: no code can open it.
PLACEHOLDER = re.compile(r"[A-Z][A-Z0-9_]*(?:\.\w+)?")


def _without_described_layouts(text: str) -> str:
    """The text less its words that are a path with an upper-case placeholder segment."""
    def described(word: str) -> bool:
        parts = word.strip("()[]{},;:.'\"`").split("/")
        return len(parts) > 1 and any(PLACEHOLDER.fullmatch(part) for part in parts)

    return " ".join(word for word in text.split(" ") if not described(word))


def _docstrings(tree: ast.AST) -> set[int]:
    """ids of the string constants that are docstrings (a module's, class's or function's
    first statement)."""
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef):
            first = node.body[0] if node.body else None
            if (isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant)
                    and isinstance(first.value.value, str)):
                found.add(id(first.value))
    return found


def _joined_by_division(tree: ast.AST) -> set[int]:
    """ids of the string constants that are an operand of `/` (a pathlib join)."""
    return {id(side) for node in ast.walk(tree)
            if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Div)
            for side in (node.left, node.right) if isinstance(side, ast.Constant)}


def results_literals(root: Path, skip: tuple[Path, ...] = ()) -> list[str]:
    """"file:line: text" for each string constant under `root` (f-string parts included)
    that spells a workflow results path: a results template's folder or file name joined to
    more path by a slash, or joined to a path by `/`. Docstrings are left alone."""
    pattern, names = _segment_pattern(results_segments()), results_names()
    hits = []
    for file in sorted(root.rglob("*.py")):
        if file.resolve() in {s.resolve() for s in skip}:
            continue
        tree = ast.parse(file.read_text(), filename=str(file))
        docstrings, joined = _docstrings(tree), _joined_by_division(tree)
        for node in ast.walk(tree):
            if not (isinstance(node, ast.Constant) and isinstance(node.value, str)):
                continue
            if id(node) in docstrings:
                continue
            spelled = pattern.search(_without_described_layouts(node.value))
            if spelled or (id(node) in joined and node.value in names):
                hits.append((file.relative_to(root), node.lineno, node.value))
    return [f"{file}:{line}: {text!r}" for file, line, text in sorted(hits)]


def test_no_results_path_outside_the_stage_table():
    hits = results_literals(PACKAGE, skip=(TABLE,))
    assert not hits, ("results paths written as literals; take them from "
                      "zsar.pipeline.stage_table (path, glob, parse_path):\n" + "\n".join(hits))


# The lines that spelled results paths before the modules used the table (issue #25).
PLANTED = '''
"""A docstring may say results/DATASET/metrics/BACKBONE/RUN.json."""
from pathlib import Path


def failures_path(dataset, results="results"):
    """Where results/DATASET/failures.parquet is."""
    return f"{results}/{dataset}/failures.parquet"


def records_in(results_dir):
    return sorted(str(p) for p in Path(results_dir).glob("*/metrics/*/*.json"))


def comparisons_in(results_dir):
    return sorted(str(p) for p in Path(results_dir).glob("*/comparisons/*.json"))


def classes_of(results, value):
    return results / value / "classes.parquet"


def descriptors_of(results, dataset):
    return results / dataset / "descriptors"


def beside(descriptors_path):
    return descriptors_path.resolve().parent.parent / "classes.parquet"


def message(dataset):
    return f"no classes at results/{dataset}/classes.parquet"
'''


def test_the_scan_finds_planted_literals(tmp_path):
    package = tmp_path / "pkg"
    package.mkdir()
    (package / "old.py").write_text(PLANTED)
    hits = results_literals(tmp_path)
    lines = sorted({int(hit.split(":")[1]) for hit in hits})
    # Every spelled path; neither docstring.
    assert lines == [8, 12, 16, 20, 24, 28, 32], hits
    assert all(hit.startswith("pkg/old.py:") for hit in hits)


def test_the_scan_leaves_other_strings_alone(tmp_path):
    (tmp_path / "fine.py").write_text(
        '"""results/DATASET/classes.parquet, in a docstring."""\n'
        'KIND = "text/html"\n'
        'HELP = "the workflow\'s results folder"\n'
        'NOTE = "no classes.parquet beside it"\n'
        'HELP = "a descriptors file (results/DATASET/descriptors/LLM.json, or another)"\n'
        'ROOT = Path("resources") / "demo"\n')
    assert results_literals(tmp_path) == []


# --- parse_path reads back what path writes -----------------------------------------------


def _outputs() -> list[tuple[str, str]]:
    return [(stage, output) for stage, entry in STAGES.items() for output in entry.outputs]


@pytest.mark.parametrize("results", [RESULTS, "/abs/elsewhere/results-2"])
@pytest.mark.parametrize(("stage", "output"), _outputs())
def test_parse_path_round_trip(stage, output, results):
    values = {name: SAMPLE_VALUES[name] for name in wildcards_of(template(stage, output))}
    written = path(stage, output, results, **values)
    folder, parsed = parse_path(stage, output, written)
    under_results = template(stage, output).startswith(RESULTS + "/")
    assert parsed == values
    assert folder == (results if under_results else RESULTS)
    assert path(stage, output, folder, **parsed) == written
    assert parse_path(stage, output, Path(written)) == (folder, parsed)


def test_parse_path_refuses_another_templates_path():
    values = {name: SAMPLE_VALUES[name] for name in wildcards_of(template("score", "scores"))}
    scores = path("score", "scores", **values)
    with pytest.raises(ValueError, match=r"score\.metrics"):
        parse_path("score", "metrics", scores)
    with pytest.raises(ValueError, match=r"descriptors\.descriptors"):
        parse_path("descriptors", "descriptors", path("classes", "classes", dataset="ucf101"))


# --- find: a stage output's files under a results folder -----------------------------------


def _touch(*paths: Path) -> None:
    for file in paths:
        file.parent.mkdir(parents=True, exist_ok=True)
        file.write_text("{}")


def test_find_under_an_absolute_or_a_relative_results_folder(tmp_path, monkeypatch):
    results = tmp_path / "out"
    _touch(results / "ucf101/metrics/b1/full.json", results / "hmdb51/metrics/b2/base.json",
           results / "ucf101/metrics/b1/full.parquet", results / "ucf101/comparisons/b1.json")
    expected = sorted(results.glob("*/metrics/*/*.json"))
    assert find("score", "metrics", results) == expected
    assert find("score", "metrics", str(results), dataset="ucf101") == expected[1:]
    assert find("compare", "comparisons", results) == [results / "ucf101/comparisons/b1.json"]
    monkeypatch.chdir(tmp_path)
    assert find("score", "metrics", "out") == [p.relative_to(tmp_path) for p in expected]


def test_find_takes_a_given_value_literally(tmp_path):
    _touch(tmp_path / "ucf[1]/descriptors/a.json", tmp_path / "ucf1/descriptors/b.json")
    assert find("descriptors", "descriptors", tmp_path, dataset="ucf[1]") == [
        tmp_path / "ucf[1]/descriptors/a.json"]
    assert find("descriptors", "descriptors", tmp_path, dataset="ucf*") == []
