"""Hostile and careless inputs (issue #27): no secret leaks, and no input hangs a run.

Each case ends within a few seconds with one clear message naming the file (and line), or
runs to its end; a case that could hang runs in a forked child killed at its deadline
(helpers.deadline), so a regression fails in seconds instead of freezing the suite. These
are unit-sized and run in `make check`. SECURITY.md names the test behind each promise.
"""

from __future__ import annotations

import base64
import io
import json
import logging
import os
import re
import time
from contextlib import redirect_stderr
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from helpers.chat_server import ScriptedChatServer, ok
from helpers.deadline import within
from helpers.secret_scan import leaks, pieces, text_leaks
from PIL import Image

from zsar.data import adapters
from zsar.models.chat import scrub

ROOT = Path(__file__).resolve().parents[1]
DEADLINE_S = 5.0

# --------------------------------------------------------------------------- secrets

KEY = "sk-zsar-hostile-4f1c9e2a7b3d5f608a1c2e4b6d8f0a92"
KEY_ENV = "ZSAR_TEST_HOSTILE_KEY"
ECHO_HEADERS = {"X-Echo-Authorization": f"Bearer {KEY}"}
# Where a careless server puts the key in a 401 body: every offset across the 200-character
# cut an error message once made before masking (the descriptors stage: each offset; the
# captions stage: every 10th).
OFFSETS = range(0, 301)
CAPTION_OFFSETS = range(0, 301, 10)
DESCRIPTOR_ANSWER = {
    "attributes": ["a club", f"the key Bearer {KEY}", "grass", "a ball", "a swing"],
    "descriptions": [f"Someone swings a club; {KEY} was in the request."],
    "hierarchy": ["sports", "golf", "golf swing"],
}


def echo_401(offset: int) -> dict:
    body = "x" * offset + f"Bearer {KEY} is not a valid key"
    return {"status": 401, "text": body, "headers": ECHO_HEADERS, "reason": f"Unauthorized {KEY}"}


def echo_200(text: str) -> dict:
    return {**ok(text), "headers": ECHO_HEADERS}


def descriptor_script(body: dict, attempt: int) -> dict:
    name = asked_class(body)
    if name.startswith("echo "):
        return echo_401(int(name.split()[1]))
    if name == "reply echo":
        return echo_200(json.dumps(DESCRIPTOR_ANSWER))
    return echo_200(f"not JSON at all, but the key: Bearer {KEY}")  # "reply echo broken"


def asked_class(body: dict) -> str:
    """The class a descriptors request asks about: the last one named (an example comes first)."""
    text = json.dumps(body["messages"])
    return re.findall(r'Action class: \\"([^"\\]+)\\"', text)[-1]


def jpeg(seed: int) -> bytes:
    pixels = np.random.default_rng(seed).integers(0, 255, (16, 16, 3), dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, "JPEG")
    return buffer.getvalue()


CAPTION_VIDEOS = {f"v_echo_{offset:03d}.mp4": jpeg(offset) for offset in CAPTION_OFFSETS}
CAPTION_VIDEOS["v_reply_echo.mp4"] = jpeg(1000)


def video_of(body: dict) -> str:
    url = body["messages"][-1]["content"][0]["image_url"]["url"]
    first = base64.b64decode(url.split(",", 1)[1])
    return next(vid for vid, frame in CAPTION_VIDEOS.items() if frame == first)


def caption_script(body: dict, attempt: int) -> dict:
    vid = video_of(body)
    if vid == "v_reply_echo.mp4":
        return echo_200(f"A person waves; the request said Bearer {KEY}.")
    return echo_401(int(vid.removesuffix(".mp4").rsplit("_", 1)[1]))


def endpoint_entry(server: ScriptedChatServer, name: str) -> dict:
    return {
        "name": name,
        "backend": "openai",
        "base_url": server.base_url,
        "model": "m",
        "api_key_env": KEY_ENV,
        "concurrency": 8,
        "timeout_s": 5,
        "max_retries": 1,
        "backoff_s": 0.01,
    }


def run_descriptor_stage(out: Path, tmp_path: Path) -> ScriptedChatServer:
    from zsar.stages import descriptors

    names = [f"echo {offset:03d}" for offset in OFFSETS] + ["reply echo", "reply echo broken"]
    classes = tmp_path / "classes.parquet"
    pq.write_table(
        pa.table(
            {
                "split": pa.array([1] * len(names), pa.int32()),
                "class_id": pa.array(range(len(names)), pa.int32()),
                "name": names,
                "display_name": names,
            }
        ),
        classes,
    )
    prompts = ROOT / "config/prompts/descriptors-v1.yaml"
    with ScriptedChatServer(descriptor_script, asked_class) as server:
        descriptors.run_descriptor_stage(
            classes,
            out / "descriptors.json",
            endpoint_entry(server, "echo-llm"),
            prompts,
            max_new_tokens=64,
            batch_size=8,
            repair_attempts=1,
            resources=tmp_path,
        )
    return server


def run_caption_stage(out: Path, tmp_path: Path) -> ScriptedChatServer:
    from zsar.stages import captions

    frames = tmp_path / "frames.parquet"
    schema = pa.schema([("video_id", pa.string()), ("jpeg", pa.list_(pa.binary()))])
    rows = [{"video_id": vid, "jpeg": [frame]} for vid, frame in CAPTION_VIDEOS.items()]
    pq.write_table(pa.Table.from_pylist(rows, schema=schema), frames)
    prompts = ROOT / "config/prompts/captions-v1.yaml"
    with ScriptedChatServer(caption_script, video_of) as server:
        captions.run_caption_stage(
            frames,
            out / "captions.parquet",
            out / "failures.parquet",
            endpoint_entry(server, "echo-vlm"),
            prompts,
            max_new_tokens=40,
            batch_size=8,
            resources=tmp_path,
            device="auto",
        )
    return server


def test_a_key_echoed_by_the_server_leaves_no_piece_in_any_output(tmp_path, monkeypatch, debug_log):
    from zsar.commands.report import run_summary_stage

    monkeypatch.setenv(KEY_ENV, KEY)
    out = tmp_path / "out"
    out.mkdir()
    start = time.monotonic()
    llm = run_descriptor_stage(out, tmp_path)
    vlm = run_caption_stage(out, tmp_path)
    run_summary_stage(
        [],
        str(out / "descriptors.json"),
        str(out / "failures.parquet"),
        str(out / "summary.html"),
        dataset="hostile",
    )
    elapsed = time.monotonic() - start

    # The server did echo the key everywhere, and the stages recorded what it said.
    assert {h["Authorization"] for h, _ in llm.requests + vlm.requests} == {f"Bearer {KEY}"}
    records = json.loads((out / "descriptors.json").read_text())["classes"]
    assert all(
        records[f"echo {o:03d}"]["reason"].startswith("request failed: HTTP 401") for o in OFFSETS
    )
    assert "Bearer ***" in records["echo 000"]["reason"]
    assert "Bearer ***" in records["reply echo"]["attributes"][1]
    assert records["reply echo broken"]["fallback"] is True
    captions = pq.read_table(out / "captions.parquet").to_pylist()
    assert [c["caption"] for c in captions] == ["A person waves; the request said Bearer ***."]
    assert pq.read_table(out / "failures.parquet").num_rows == len(CAPTION_OFFSETS)
    assert "falls back to its name" in debug_log.read_text()

    # ... and no piece of the key is anywhere a user could look: outputs, inputs, the log.
    assert leaks(tmp_path, KEY) == []
    assert elapsed < 60, f"the stages took {elapsed:.1f} s"


def test_the_scanner_sees_a_key_in_compressed_parquet_metadata_and_base64_pages(tmp_path):
    piece = KEY[:12]  # holds a "k", which the JSON file escapes
    pq.write_table(
        pa.table({"reason": [f"... {piece} ..."] * 1000}),
        tmp_path / "a.parquet",
        compression="zstd",
    )
    table = pa.table({"x": [1]}).replace_schema_metadata({"note": piece})
    pq.write_table(table, tmp_path / "b.parquet")
    page = base64.b64encode(f"<td>{piece}</td>".encode()).decode()
    (tmp_path / "report.html").write_text(
        f'<script>{{"data": "data:text/html;charset=utf8;filename=s.html;base64,{page}"}}</script>'
    )
    (tmp_path / "c.json").write_text(json.dumps({"r": piece}).replace("k", "\\u006b"))
    found = leaks(tmp_path, KEY)
    assert {line.split(" ", 1)[0] for line in found} == {
        "a.parquet",
        "b.parquet",
        "report.html",
        "c.json",
    }
    # Where a search of the raw bytes would see nothing, the scanner still does.
    assert piece.encode() not in (tmp_path / "report.html").read_bytes()
    assert piece.encode() not in (tmp_path / "c.json").read_bytes()


@pytest.mark.parametrize("offset", [0, 150, 195, 199, 200, 201, 230, 300])
def test_masking_comes_before_any_cut(offset):
    text = "y" * offset + KEY + " tail"
    for cut in (offset + 3, offset + 20, 200, len(text)):
        assert text_leaks(scrub(text, KEY)[:cut], KEY) == []
    # A key a server shortened is masked too: any run of 8 of its characters.
    assert text_leaks(scrub(f"key {KEY[:-3]}... or {KEY[5:17]}", KEY), KEY) == []
    assert scrub("nothing secret here", KEY) == "nothing secret here"


def test_a_chat_response_body_is_read_capped(monkeypatch):
    from zsar.models.chat import ChatClient, ChatEndpoint

    monkeypatch.setenv(KEY_ENV, KEY)
    huge = {"status": 200, "text": "x" * 3_000_000}
    with ScriptedChatServer(lambda body, attempt: huge, lambda body: "one") as server:
        endpoint = ChatEndpoint(
            server.base_url, "m", KEY_ENV, timeout_s=5, max_retries=0, max_response_bytes=100_000
        )
        start = time.monotonic()
        result = ChatClient(endpoint).complete([{"role": "user", "content": "hi"}], max_tokens=4)
    assert result.text is None and "over the limit of 100000 bytes" in result.error
    assert time.monotonic() - start < DEADLINE_S


# --------------------------------------------------------------------------- annotations


def _one_line_error(outcome) -> str:
    assert outcome.error is not None, f"no error: returned {outcome.value!r}"
    assert outcome.seconds < DEADLINE_S, f"{outcome.seconds:.1f} s"
    message = outcome.error.split(": ", 1)[1]
    assert "\n" not in message, message
    return message


def _manifest_cli(annotations: Path, labels: Path, out: Path) -> tuple[int, str]:
    from zsar.cli import main

    stderr = io.StringIO()
    with redirect_stderr(stderr):
        code = main(
            [
                "manifest",
                "--dataset",
                "ucf101",
                "--annotations",
                str(annotations),
                "--labels",
                str(labels),
                "--out",
                str(out),
            ]
        )
    return code, stderr.getvalue()


@pytest.fixture
def labels_csv(tmp_path):
    path = tmp_path / "labels.csv"
    path.write_text("id,name\n0,ApplyEyeMakeup\n1,Archery\n")
    return path


def test_a_1mb_annotation_line_is_one_error_naming_the_file_and_line(tmp_path, labels_csv):
    # Whitespace runs were what made the old row pattern backtrack for hours.
    listing = tmp_path / "list.txt"
    listing.write_text("v_ApplyEyeMakeup_g01_c01.avi 0\n" + "v" + " " * 1_000_000 + "x 1\n")
    for call in (adapters.check_annotations, adapters.read_split):
        message = _one_line_error(within(DEADLINE_S, call, "ucf101", listing, labels_csv))
        assert message.startswith(f"{listing}:2: line longer than"), message
    code, err = within(DEADLINE_S, _manifest_cli, listing, labels_csv, tmp_path / "m.parquet").value
    assert code == 2 and err.count("\n") == 1 and f"{listing}:2:" in err


@pytest.mark.parametrize(
    "line",
    [
        "v" + " " * 60_000 + "x",  # just under the line limit
        "a " * 30_000 + "b",
        "Class/v_" + "a.avi" * 5_000 + " " * 30_000 + "z",
    ],
)
def test_long_lines_under_the_limit_are_read_in_linear_time(tmp_path, labels_csv, line):
    # Format detection tries UCF101's official rows, then `path label` rows.
    listing = tmp_path / "list.txt"
    listing.write_text("v_ApplyEyeMakeup_g01_c01.avi 0\n" + line + "\n")
    message = _one_line_error(
        within(DEADLINE_S, adapters.read_split, "ucf101", listing, labels_csv)
    )
    assert message.startswith(f"{listing}: not a ucf101 annotation file"), message
    assert "line 2: expected `relative/path label`" in message, message
    hmdb = tmp_path / "hmdb"
    hmdb.mkdir()
    (hmdb / "brush_hair_test_split1.txt").write_text("a.avi 2\n" + line + "\n")
    message = _one_line_error(
        within(DEADLINE_S, adapters.read_split, "hmdb51", hmdb, None, 1, "official")
    )
    assert "line 2: expected `<video>.avi <flag 0|1|2>`" in message, message


# --------------------------------------------------------------------------- descriptor files


def _descriptors_cli(*args: str) -> tuple[int, str]:
    from zsar.cli import main

    stderr = io.StringIO()
    with redirect_stderr(stderr):
        code = main(["descriptors", *args])
    return code, stderr.getvalue()


def _load_curated(path: Path):
    from zsar.stages.descriptors import load_curated

    return load_curated(path)


def test_a_100mb_descriptor_file_is_refused_before_it_is_read(tmp_path, labels_csv):
    big = tmp_path / "big.json"
    with big.open("w") as handle:
        handle.write('{"ApplyEyeMakeup": ["')
        handle.write("x" * 100_000_000)
        handle.write('"]}')
    code, err = within(
        DEADLINE_S,
        _descriptors_cli,
        "import",
        "--labels",
        str(labels_csv),
        "--out",
        str(tmp_path / "o.json"),
        f"attributes={big}",
    ).value
    assert code == 2 and err.count("\n") == 1, err
    assert f"{big}: 100.0 MB, over the limit of 32 MB for descriptor files" in err
    assert "ZSAR_MAX_DESCRIPTOR_FILE_MB" in err
    message = _one_line_error(within(DEADLINE_S, _load_curated, big))
    assert message.startswith(f"{big}: 100.0 MB, over the limit"), message


BOMB = "\n".join(
    [f"l0: &l0 [{', '.join(['lol'] * 9)}]"]
    + [f"l{n}: &l{n} [{', '.join([f'*l{n - 1}'] * 9)}]" for n in range(1, 9)]
    + ['ApplyEyeMakeup: {attributes: *l8, descriptions: ["x"], hierarchy: ["a", "b"]}', ""]
)


def test_a_nine_level_alias_bomb_is_one_error_naming_the_file_and_line(tmp_path, labels_csv):
    bomb = tmp_path / "bomb.yaml"
    bomb.write_text(BOMB)
    message = _one_line_error(within(DEADLINE_S, _load_curated, bomb))
    assert re.match(
        rf"{re.escape(str(bomb))}:\d+: cannot read it as YAML: the values expand", message
    ), message
    templates = tmp_path / "templates.yaml"
    templates.write_text("attribute: '{}'\ndescription: '{}'\nhierarchy: '{}'\n")
    code, err = within(
        DEADLINE_S,
        _descriptors_cli,
        "export",
        str(bomb),
        "--out",
        str(tmp_path / "o.json"),
        "--templates",
        str(templates),
        "--classes",
        str(labels_csv),
    ).value
    assert code == 2 and err.count("\n") == 1 and f"{bomb}:" in err, err


def test_yaml_that_pyyaml_writes_with_aliases_still_reads():
    import yaml

    from zsar.data.limits import load_yaml_limited

    shared = ["a", "b"]
    text = yaml.safe_dump({"x": shared, "y": shared})
    assert "*id" in text
    assert load_yaml_limited(text) == {"x": ["a", "b"], "y": ["a", "b"]}


def test_a_json_descriptor_file_is_parsed_as_json(tmp_path):
    path = tmp_path / "curated.json"
    path.write_text('{"a": &x ["one"],\n "b": *x}\n')  # YAML, not JSON
    message = _one_line_error(within(DEADLINE_S, _load_curated, path))
    assert message.startswith(f"{path}:1: invalid JSON"), message


def test_size_limits_are_configurable_and_named(tmp_path, monkeypatch):
    from zsar.data.caption_files import read_caption_file
    from zsar.data.limits import FileTooLarge

    labels = tmp_path / "labels.csv"
    labels.write_text("0,a\n1,b\n" * 100)
    captions = tmp_path / "captions.json"
    captions.write_text(json.dumps({f"v{i}": "a caption" for i in range(100)}))
    monkeypatch.setenv("ZSAR_MAX_LABEL_FILE_MB", "0.0001")
    monkeypatch.setenv("ZSAR_MAX_CAPTION_FILE_MB", "0.001")
    with pytest.raises(adapters.AnnotationError, match="ZSAR_MAX_LABEL_FILE_MB") as err:
        adapters.read_class_list(labels)
    assert str(err.value).startswith(f"{labels}: 0.0 MB, over the limit of 0.0001 MB")
    with pytest.raises(FileTooLarge, match=r"limit of 0\.001 MB for caption files"):
        read_caption_file(captions)
    monkeypatch.setenv("ZSAR_MAX_CAPTION_FILE_MB", "1")
    assert len(read_caption_file(captions)) == 100


# --------------------------------------------------------------------------- the video root


def _preflight(data_root: Path) -> tuple[str, list[str]]:
    from zsar.pipeline.config import load_config
    from zsar.pipeline.plan import preflight, resolve_run

    warnings: list[str] = []
    handler = logging.Handler(logging.WARNING)
    handler.emit = lambda record: warnings.append(record.getMessage())
    logging.getLogger("zsar").addHandler(handler)
    spec = {
        "adapter": "ucf101",
        "annotations": "{data_root}/list.txt",
        "labels": "{data_root}/labels.csv",
        "video_root": "{data_root}/videos",
        "splits": [1],
    }
    config = load_config(
        [ROOT / "config/config.yaml"],
        {
            "datasets": ["looped"],
            "models": str(ROOT / "config/models.yaml"),
            "data_root": str(data_root),
            "allow_demo_models": True,
            "dataset_specs": {"looped": spec},
        },
    )
    return preflight(resolve_run(config, ROOT / "config"), 0.1).text(), warnings


def test_a_video_root_with_symlink_loops_gives_its_preflight_with_one_warning(tmp_path):
    videos = tmp_path / "videos"
    (videos / "Archery").mkdir(parents=True)
    (videos / "Archery/v_Archery_g01_c01.avi").write_bytes(b"")
    # Two links back to the root and one to its parent: an endless, exponential walk.
    for name, target in (("up", ".."), ("up2", ".."), ("top", "../..")):
        os.symlink(target, videos / "Archery" / name)
    (tmp_path / "list.txt").write_text("Archery/v_Archery_g01_c01.avi\n")
    (tmp_path / "labels.csv").write_text("0,ApplyEyeMakeup\n1,Archery\n")
    outcome = within(DEADLINE_S, _preflight, tmp_path)
    assert outcome.error is None, outcome.error
    text, warnings = outcome.value
    assert "1 videos listed" in text and "1 found, 0 missing" in text
    assert len(warnings) == 1, warnings
    assert "skipped 3 folder link(s)" in warnings[0]
    assert "Archery/up -> ." in warnings[0] and "Archery/top/videos -> ." in warnings[0]


def test_a_video_id_leading_out_of_the_root_is_missing(tmp_path):
    from zsar.stages.manifest import check_videos

    (tmp_path / "secret.avi").write_bytes(b"not a video of the benchmark")
    (tmp_path / "videos/Archery").mkdir(parents=True)
    listing = tmp_path / "list.txt"
    listing.write_text("../secret.avi 1\nArchery/../../secret.avi 1\n")
    (tmp_path / "labels.csv").write_text("0,ApplyEyeMakeup\n1,Archery\n")
    [check] = check_videos(
        "outside",
        "ucf101",
        {1: str(listing)},
        {1: str(tmp_path / "labels.csv")},
        str(tmp_path / "videos"),
        "list",
    )
    assert (check.listed, check.found) == (2, 0)


# --------------------------------------------------------------------------- tables and plots

HOSTILE = r"b|16 & 5% $x$ ^y ~z _w \v {u} #t <s>"
SPECIALS = set("|&%$^~_\\{}#")


def _records():
    from test_tables import record

    return [
        record(backbone=HOSTILE),
        record(backbone=HOSTILE, variant="full", run="full", **{"lambda": 0.3}),
    ]


def gfm_cells(line: str) -> list[str]:
    """A Markdown table row's cells as GitHub reads them: a backslash escapes what follows."""
    cells, cell, chars = [], "", iter(line.strip())
    for char in chars:
        if char == "\\":
            cell += char + next(chars, "")
        elif char == "|":
            cells.append(cell)
            cell = ""
        else:
            cell += char
    cells.append(cell)
    return cells[1:-1]  # the row starts and ends with a pipe


def test_markdown_tables_keep_their_shape_whatever_the_names():
    from zsar.commands.tables import footnote_lines, table_rows, to_markdown

    records = _records()
    markdown = to_markdown(table_rows(records), footnote_lines(records), records)
    tables = re.findall(r"(?:^\|.*\|$\n?)+", markdown, flags=re.M)
    assert len(tables) >= 2
    for table in tables:
        rows = [gfm_cells(line) for line in table.strip().splitlines()]
        assert {len(row) for row in rows} == {len(rows[0])}, table
    assert r"b\|16 & 5% $x$ ^y ~z _w \\v {u} #t <s>" in markdown


LATEX_OF_HOSTILE = (
    r"b\textbar{}16 \& 5\% \$x\$ \textasciicircum{}y \textasciitilde{}z \_w "
    r"\textbackslash{}v \{u\} \#t \textless{}s\textgreater{}"
)


def test_latex_escapes_every_special_character():
    from zsar.commands.tables import _latex_escape, footnote_lines, table_rows, to_latex

    assert _latex_escape(HOSTILE) == LATEX_OF_HOSTILE
    records = _records()
    latex = to_latex(table_rows(records), footnote_lines(records))
    assert LATEX_OF_HOSTILE in latex
    # Without TeX: every special character left in a row is one the table itself writes.
    body = latex.split(r"\midrule", 1)[1].split(r"\bottomrule", 1)[0]
    for row in body.strip().splitlines():
        bare = re.sub(
            r"\\(textbackslash|textasciicircum|textasciitilde|textless|textgreater|"
            r"textbar)\{\}|\\[&%$#_{}]|\$\\pm\$|\$\^\{\*\}\$|\$\^\{\\dagger\}\$"
            r"|\\\\$",
            "",
            row,
        )
        assert len(re.findall(r"(?<!\\)&", row)) == 6, row  # 7 columns
        assert not (set(bare) & SPECIALS - {"&"}), (row, bare)
    assert latex.count("{") == latex.count("}")


@pytest.mark.skipif(not __import__("shutil").which("pdflatex"), reason="no pdflatex")
def test_the_latex_table_compiles(tmp_path):
    import subprocess

    from zsar.commands.tables import footnote_lines, table_rows, to_latex

    records = _records()
    document = (
        "\\documentclass{article}\\usepackage{booktabs}\\begin{document}\n"
        + to_latex(table_rows(records), footnote_lines(records))
        + "\\end{document}\n"
    )
    (tmp_path / "t.tex").write_text(document)
    run = subprocess.run(
        ["pdflatex", "-interaction=nonstopmode", "-halt-on-error", "t.tex"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert run.returncode == 0, run.stdout[-2000:]


def test_plots_draw_names_that_look_like_mathtext(tmp_path):
    from zsar.commands import report

    names = [r"$\foo$", HOSTILE, "$", "a $ b $ c"]
    start = time.monotonic()
    rows = [(name, 0.25 * i, 4) for i, name in enumerate(names)]
    report.save_figure(
        report.plot_per_class(rows, f"{HOSTILE}: per class"), tmp_path / "per_class.png"
    )
    matrix = np.eye(len(names), dtype=int)
    report.save_figure(report.plot_confusion(matrix, names, r"$\foo$"), tmp_path / "cm.png")
    report.save_figure(report.plot_ablation(_records(), r"$\foo$"), tmp_path / "ablation.png")
    for name in ("per_class.png", "cm.png", "ablation.png"):
        assert (tmp_path / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert time.monotonic() - start < 30


# --------------------------------------------------------------------------- the registry


@pytest.mark.parametrize(
    ("registry", "problem"),
    [
        (
            {"backbones": {"../escaped": {"backend": "open_clip"}}},
            "backbones: '../escaped' is not a safe model name",
        ),
        (
            {"llms": {"a/b": {"backend": "file", "path": "x.yaml"}}},
            "llms: 'a/b' is not a safe model name",
        ),
        (
            {"backbones": {"x": {"backend": "open_clip", "filename": "../../../escaped.bin"}}},
            "backbones.x.filename: '../../../escaped.bin' is not a safe file name",
        ),
        (
            {"backbones": {"x": {"backend": "open_clip", "local_file": "/etc/passwd"}}},
            "backbones.x.local_file: '/etc/passwd' is not a safe file name",
        ),
    ],
)
def test_registry_names_and_file_fields_must_be_safe(registry, problem):
    from zsar.models.registry import RegistryError, check_registry

    with pytest.raises(RegistryError) as err:
        check_registry(registry, "models.yaml")
    assert str(err.value).startswith(f"models.yaml: {problem}"), err.value


def test_a_url_without_a_file_name_is_refused(tmp_path):
    from zsar.models.fetch import FetchError, fetch_url

    with pytest.raises(FetchError, match="names no file"):
        fetch_url({"name": "m", "url": "https://example.org/weights/.."}, tmp_path)


def test_the_key_pieces_cover_every_eight_characters():
    assert len(pieces(KEY)) <= len(KEY) - 7 and KEY[:8] in pieces(KEY)
