"""Manifest stage: tables, existence on disk, the CLI, the failures gather, and the real lists."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from zsar.cli import main
from zsar.data.adapters import AnnotationError
from zsar.data.io import failures_table, write_parquet
from zsar.stages import manifest as stage

BENCHMARK_LISTS = Path(__file__).resolve().parents[1].parent / "shared" / "benchmark-lists"


def write_lines(path: Path, lines: list[str], newline: str = "\n") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes((newline.join(lines) + newline).encode())
    return path


@pytest.fixture
def demo(tmp_path):
    """A demo-style list + labels CSV, with two of the three videos on disk."""
    labels = write_lines(tmp_path / "labels.csv", ["id,name", "0,sliding_square", "1,RotatingBar"],
                         "\r\n")
    ann = write_lines(tmp_path / "annotations.txt",
                      ["videos/b.mp4 1", "videos/a.mp4 0", "videos/gone.mp4 1"], "\r\n")
    videos = tmp_path / "root"
    for name in ("a.mp4", "b.mp4"):
        (videos / "videos").mkdir(parents=True, exist_ok=True)
        (videos / "videos" / name).write_bytes(b"\x00")
    return ann, labels, videos


def test_build_manifest_tables(demo):
    ann, labels, root = demo
    manifest, classes = stage.build_manifest("demo", {1: str(ann)}, {1: str(labels)}, str(root),
                                            class_names="words")
    assert manifest.schema == stage.MANIFEST_SCHEMA
    assert classes.schema == stage.CLASSES_SCHEMA
    assert manifest.to_pylist() == [
        {"video_id": "videos/a.mp4", "path": f"{root}/videos/a.mp4", "label": "sliding_square",
         "class_id": 0, "split": 1, "exists": True},
        {"video_id": "videos/b.mp4", "path": f"{root}/videos/b.mp4", "label": "RotatingBar",
         "class_id": 1, "split": 1, "exists": True},
        {"video_id": "videos/gone.mp4", "path": f"{root}/videos/gone.mp4", "label": "RotatingBar",
         "class_id": 1, "split": 1, "exists": False},
    ]
    assert classes.to_pylist() == [
        {"split": 1, "class_id": 0, "name": "sliding_square", "display_name": "sliding square"},
        {"split": 1, "class_id": 1, "name": "RotatingBar", "display_name": "rotating bar"},
    ]
    assert stage.summary_line(manifest, classes) == "videos=3 classes=2 missing=1"


def test_without_video_root_every_video_is_missing(demo):
    ann, labels, _ = demo
    manifest, _ = stage.build_manifest("demo", {1: str(ann)}, {1: str(labels)}, None)
    assert manifest["exists"].to_pylist() == [False, False, False]
    assert manifest["path"].to_pylist() == ["videos/a.mp4", "videos/b.mp4", "videos/gone.mp4"]


def test_a_video_in_two_splits_appears_once_per_split(tmp_path):
    rows = ["id,name", "0,a", "1,b"]
    labels = {s: str(write_lines(tmp_path / f"l{s}.csv", rows)) for s in (1, 2)}
    ann = {
        1: str(write_lines(tmp_path / "s1.txt", ["x.mp4 0", "y.mp4 1"])),
        2: str(write_lines(tmp_path / "s2.txt", ["x.mp4 1"], "\r\n")),
    }
    manifest, classes = stage.build_manifest("ucf101", ann, labels, None)
    assert [(r["split"], r["video_id"], r["class_id"]) for r in manifest.to_pylist()] == [
        (1, "x.mp4", 0), (1, "y.mp4", 1), (2, "x.mp4", 1)
    ]
    assert classes["split"].to_pylist() == [1, 1, 2, 2]


def test_folder_adapter_finds_its_videos_without_a_root(tmp_path):
    for rel in ("Jump/a.mp4", "Run/b.avi"):
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_bytes(b"")
    manifest, classes = stage.build_manifest("folder", {1: str(tmp_path)}, {1: None}, None,
                                            class_names="words")
    assert manifest["exists"].to_pylist() == [True, True]
    assert manifest["path"].to_pylist() == [f"{tmp_path}/Jump/a.mp4", f"{tmp_path}/Run/b.avi"]
    assert classes["display_name"].to_pylist() == ["jump", "run"]


def test_bad_annotations_raise_with_file_and_line(demo, tmp_path):
    _, labels, _ = demo
    bad = write_lines(tmp_path / "bad.txt", ["a.mp4 0", "b.mp4"])
    with pytest.raises(AnnotationError, match=r"bad\.txt.*line 2"):
        stage.build_manifest("demo", {1: str(bad)}, {1: str(labels)}, None)


# ---------------------------------------------------------------------------------------
# CLI


def test_cli_writes_both_tables_and_one_summary_line(demo, tmp_path, capsys):
    ann, labels, root = demo
    out = tmp_path / "out" / "manifest.parquet"
    code = main(["manifest", "--dataset", "demo", "--annotations", str(ann), "--labels",
                 str(labels), "--video-root", str(root), "--split", "2", "--out", str(out)])
    captured = capsys.readouterr()
    assert code == 0
    assert captured.out == "videos=3 classes=2 missing=1\n"
    assert "missing on disk: 1 of 3" in captured.err and "gone.mp4" in captured.err
    written = pq.read_table(out)
    assert written["split"].to_pylist() == [2, 2, 2]
    assert written["exists"].to_pylist() == [True, True, False]
    classes = pq.read_table(tmp_path / "out" / "manifest.classes.parquet")
    assert classes["name"].to_pylist() == ["sliding_square", "RotatingBar"]
    # Provenance travels with the table, and equal inputs give byte-identical files.
    assert b"zsar" in pq.read_schema(out).metadata
    first = out.read_bytes()
    assert main(["manifest", "--dataset", "demo", "--annotations", str(ann), "--labels",
                 str(labels), "--video-root", str(root), "--split", "2", "--out", str(out)]) == 0
    assert out.read_bytes() == first


def test_cli_reports_a_wrong_format(tmp_path, capsys):
    ann = write_lines(tmp_path / "list.txt", ["a.mp4 0"])
    code = main(["manifest", "--dataset", "hmdb51", "--annotations", str(ann), "--format",
                 "official", "--out", str(tmp_path / "m.parquet")])
    captured = capsys.readouterr()
    assert code == 2
    assert "zsar manifest: error:" in captured.err and str(ann) in captured.err
    assert captured.out == ""
    assert not (tmp_path / "m.parquet").exists()


def test_cli_does_not_import_torch(demo, tmp_path):
    ann, labels, _ = demo
    code = (
        "import sys; from zsar.cli import main; "
        f"main(['manifest', '--dataset', 'demo', '--annotations', {str(ann)!r}, "
        f"'--labels', {str(labels)!r}, '--out', {str(tmp_path / 'm.parquet')!r}]); "
        "print('torch' in sys.modules)"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            timeout=60, check=True)
    assert result.stdout.splitlines() == ["videos=3 classes=2 missing=3", "False"]


def test_run_manifest_stage_reads_the_rule_params(demo, tmp_path, caplog):
    ann, labels, root = demo
    spec = {"adapter": "demo", "annotations": {"1": str(ann)}, "labels": {"1": str(labels)},
            "video_root": str(root), "format": None, "splits": [1]}
    with caplog.at_level("INFO", logger="zsar.stages.manifest"):
        summary = stage.run_manifest_stage(spec, str(tmp_path / "m.parquet"),
                                           str(tmp_path / "video_files.tsv"))
    assert summary == "videos=3 classes=2 missing=1"
    assert summary in caplog.messages and "missing on disk: 1 of 3 videos" in caplog.text
    # The frames stage's key: the videos on disk and their sizes, not where they are.
    assert (tmp_path / "video_files.tsv").read_text() == (
        "video_id\tbytes\nvideos/a.mp4\t1\nvideos/b.mp4\t1\n"
    )


def test_class_list_key_and_stage_follow_content_not_paths(demo, tmp_path):
    """The same annotation files under another folder give the same key and class list;
    a changed file gives another key."""
    from zsar.pipeline.plan import DatasetPlan

    ann, labels, _ = demo
    def plan(folder):
        return DatasetPlan("toy", "ucf101", {1: str(folder / "annotations.txt")},
                           {1: str(folder / "labels.csv")}, None, None, (1,), "raw")

    moved = tmp_path / "moved"
    moved.mkdir()
    for path in (ann, labels):
        (moved / path.name).write_bytes(path.read_bytes())
    here, there = plan(ann.parent), plan(moved)
    assert here.class_list_key() == there.class_list_key()
    stage.run_classes_stage(here, str(tmp_path / "a.parquet"), here.class_list_key())
    stage.run_classes_stage(there, str(tmp_path / "b.parquet"), there.class_list_key())
    assert (tmp_path / "a.parquet").read_bytes() == (tmp_path / "b.parquet").read_bytes()
    with open(moved / "labels.csv", "a") as f:
        f.write("2,Extra\r\n")
    assert there.class_list_key() != here.class_list_key()
    with pytest.raises(ValueError, match="changed since the run was planned"):
        stage.run_classes_stage(there, str(tmp_path / "c.parquet"), here.class_list_key())
    (moved / "annotations.txt").unlink()
    with pytest.raises(Exception, match=r"missing input: .*annotations.txt"):
        there.class_list_key()


def test_a_generated_datasets_moved_lists_keep_the_class_lists_rows(demo, tmp_path):
    """The demo's lists are keyed by path (they do not exist when the run is planned), so
    moved ones give another classes.parquet; its rows, the key of the jobs that read it
    with a model (common.smk, class_list_content), stay the same unless a class changes."""
    from zsar.data.io import rows_digest
    from zsar.pipeline.plan import DatasetPlan

    ann, labels, _ = demo
    moved = tmp_path / "moved"
    moved.mkdir()
    for path in (ann, labels):
        (moved / path.name).write_bytes(path.read_bytes())
    outputs = []
    for folder in (ann.parent, moved):
        plan = DatasetPlan("demo", "demo", {1: str(folder / "annotations.txt")},
                           {1: str(folder / "labels.csv")}, None, None, (1,), "raw", True)
        outputs.append(tmp_path / f"{len(outputs)}.parquet")
        stage.run_classes_stage(plan, str(outputs[-1]), plan.class_list_key())
    assert outputs[0].read_bytes() != outputs[1].read_bytes()
    assert rows_digest(outputs[0]) == rows_digest(outputs[1])
    renamed = (moved / "labels.csv").read_text().replace("sliding_square", "sliding_circle")
    (moved / "labels.csv").write_text(renamed)
    stage.run_classes_stage(plan, str(outputs[1]), plan.class_list_key())
    assert rows_digest(outputs[0]) != rows_digest(outputs[1])


# ---------------------------------------------------------------------------------------
# failures.parquet


def test_gather_failures(tmp_path):
    labels = {s: str(write_lines(tmp_path / f"l{s}.csv", ["id,name", "0,a"])) for s in (1, 2)}
    ann = {
        1: str(write_lines(tmp_path / "s1.txt", ["v/z.mp4 0", "v/b.mp4 0", "v/ok.mp4 0"])),
        2: str(write_lines(tmp_path / "s2.txt", ["v/z.mp4 0"])),
    }
    (tmp_path / "root" / "v").mkdir(parents=True)
    (tmp_path / "root" / "v" / "ok.mp4").write_bytes(b"")
    (tmp_path / "root" / "v" / "b.mp4").write_bytes(b"")
    root = str(tmp_path / "root")
    manifest, _ = stage.build_manifest("demo", ann, labels, root)
    manifest_path = tmp_path / "manifest.parquet"
    write_parquet(manifest, manifest_path)
    shard0 = failures_table([{"video_id": "v/ok.mp4", "stage": "frames", "reason": "bad moov"}])
    shard1 = failures_table([
        {"video_id": "v/b.mp4", "stage": "frames", "reason": "no frames"},
        {"video_id": "v/b.mp4", "stage": "captions", "reason": "timeout"},
    ])
    paths = []
    for i, table in enumerate([shard0, shard1, failures_table([])]):
        paths.append(str(tmp_path / f"{i}.failures.parquet"))
        write_parquet(table, paths[-1])

    out = tmp_path / "failures.parquet"
    stage.run_failures_stage(str(manifest_path), paths, str(out))
    expected = [
        {"video_id": "v/b.mp4", "stage": "captions", "reason": "timeout"},
        {"video_id": "v/b.mp4", "stage": "frames", "reason": "no frames"},
        {"video_id": "v/ok.mp4", "stage": "frames", "reason": "bad moov"},
        # Missing in both splits, recorded once.
        {"video_id": "v/z.mp4", "stage": "manifest", "reason": f"missing on disk: {root}/v/z.mp4"},
    ]
    assert pq.read_table(out).to_pylist() == expected
    # The order of the shard files does not change the result.
    stage.run_failures_stage(str(manifest_path), paths[::-1], str(out))
    assert pq.read_table(out).to_pylist() == expected


def test_gather_failures_keeps_one_row_per_video_and_stage(demo):
    ann, labels, root = demo
    manifest, _ = stage.build_manifest("demo", {1: str(ann)}, {1: str(labels)}, str(root))
    twice = [
        failures_table([{"video_id": "videos/a.mp4", "stage": "frames", "reason": "z"}]),
        failures_table([{"video_id": "videos/a.mp4", "stage": "frames", "reason": "a"}]),
    ]
    rows = stage.gather_failures(manifest, twice).to_pylist()
    assert rows == stage.gather_failures(manifest, twice[::-1]).to_pylist()
    assert [(r["video_id"], r["stage"]) for r in rows] == [
        ("videos/a.mp4", "frames"), ("videos/gone.mp4", "manifest")
    ]


# ---------------------------------------------------------------------------------------
# The real benchmark lists (../shared/benchmark-lists)


# The K600 ZS split-1 list has 14,084 records: `wc -l` says 14,083 because its last line has
# no newline, and that last line is a real video (test/zpUdXUcJ_1I_000035_000045.mp4 159).
REAL_CASES = {
    "ucf101-vificlip": ("ucf101", "vificlip-splits/ucf_splits_val1.txt",
                        "vificlip-labels/ucf_101_labels.csv", 3783, 101),
    "hmdb51-vificlip": ("hmdb51", "vificlip-splits/hmdb_splits_val1.txt",
                        "vificlip-labels/hmdb_51_labels.csv", 1530, 51),
    "k400-vificlip": ("kinetics", "vificlip-splits/k400_splits_val.txt",
                      "vificlip-labels/kinetics_400_labels.csv", 19877, 400),
    "ssv2-vificlip": ("ssv2", "vificlip-splits/ssv2_splits_validation.txt",
                      "vificlip-labels/ssv2_labels.csv", 24777, 174),
    "k600zs-split1": ("k600_zs", "vificlip-splits/k600_splits_ZS_split1_K600_eval.txt",
                      "vificlip-labels/ZS_split1_K600.csv", 14084, 160),
    "ucf101-official": ("ucf101", "ucf101-official/testlist01.txt", "classInd", 3783, 101),
}


@pytest.fixture
def benchmark_lists() -> Path:
    if not BENCHMARK_LISTS.is_dir():
        pytest.skip(f"real benchmark lists not found at {BENCHMARK_LISTS}")
    return BENCHMARK_LISTS


def class_ind_from_mmaction_map(lists: Path, out: Path) -> Path:
    """UCF101's classInd.txt is the mmaction2 map numbered from 1."""
    names = (lists / "mmaction2-label-maps" / "ucf101_label_map.txt").read_text().split()
    return write_lines(out, [f"{i} {name}" for i, name in enumerate(names, start=1)], "\r\n")


@pytest.mark.parametrize("case", sorted(REAL_CASES))
def test_real_benchmark_counts(benchmark_lists, tmp_path, capsys, case):
    adapter, ann, labels, videos, classes = REAL_CASES[case]
    if labels == "classInd":
        labels_path = class_ind_from_mmaction_map(benchmark_lists, tmp_path / "classInd.txt")
    else:
        labels_path = benchmark_lists / labels
    out = tmp_path / "manifest.parquet"
    code = main(["manifest", "--dataset", adapter, "--annotations", str(benchmark_lists / ann),
                 "--labels", str(labels_path), "--out", str(out)])
    assert code == 0
    assert capsys.readouterr().out == f"videos={videos} classes={classes} missing={videos}\n"
    table = pq.read_table(out)
    assert table.num_rows == videos
    assert sorted(set(table["class_id"].to_pylist())) == list(range(classes))


def test_real_ucf101_official_and_vificlip_lists_agree(benchmark_lists, tmp_path):
    """Split 1 of both formats is the same 3783 videos with the same classes."""
    class_ind = class_ind_from_mmaction_map(benchmark_lists, tmp_path / "classInd.txt")
    official, _ = stage.build_manifest(
        "ucf101", {1: str(benchmark_lists / "ucf101-official/testlist01.txt")},
        {1: str(class_ind)}, None,
    )
    vifi, _ = stage.build_manifest(
        "ucf101", {1: str(benchmark_lists / "vificlip-splits/ucf_splits_val1.txt")},
        {1: str(benchmark_lists / "vificlip-labels/ucf_101_labels.csv")}, None,
    )
    as_pairs = sorted(
        (vid.split("/")[-1], cid)
        for vid, cid in zip(official["video_id"].to_pylist(), official["class_id"].to_pylist(),
                            strict=True)
    )
    assert as_pairs == sorted(zip(vifi["video_id"].to_pylist(), vifi["class_id"].to_pylist(),
                                  strict=True))


def test_generated_demo_has_every_video(demo_videos, tmp_path, capsys):
    """The demo adapter reads what the demo_data rule writes, and finds all its videos."""
    out = tmp_path / "manifest.parquet"
    assert main(["manifest", "--dataset", "demo", "--annotations",
                 str(demo_videos / "annotations.txt"), "--labels", str(demo_videos / "labels.csv"),
                 "--video-root", str(demo_videos / "videos"), "--out", str(out)]) == 0
    summary = capsys.readouterr().out.strip()
    manifest = pq.read_table(out)
    classes = pq.read_table(tmp_path / "manifest.classes.parquet")
    assert manifest.num_rows > 0 and all(manifest["exists"].to_pylist())
    assert summary == f"videos={manifest.num_rows} classes={classes.num_rows} missing=0"
