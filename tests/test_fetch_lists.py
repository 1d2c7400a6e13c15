"""`zsar fetch-lists` against a local HTTP server serving the copies in ../shared, and the
missing-input message that points at the official layout's dataset file or at the fetch.
No network: every URL is 127.0.0.1."""

from __future__ import annotations

import hashlib
import os
import re
import shlex
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from helpers.official_layouts import official_hmdb51, official_ucf101, serve, vificlip_mirror
from helpers.workflow import BENCHMARK_LISTS, REPO

from zsar.cli import main
from zsar.data.lists import load_lists
from zsar.pipeline.config import ConfigError, load_config
from zsar.pipeline.plan import preflight, resolve_run

DATASET_FILES = {
    "ucf101": "ucf101.yaml", "hmdb51": "hmdb51.yaml", "k400": "k400.yaml",
    "k600_zs": "k600_zs.yaml", "ssv2": "ssv2.yaml",
}


@pytest.fixture(autouse=True)
def _in_the_checkout(monkeypatch):
    # The config's paths (config/models.yaml, …) are relative to the checkout.
    monkeypatch.chdir(REPO)


@pytest.fixture(scope="module")
def mirror(tmp_path_factory) -> Path:
    return vificlip_mirror(tmp_path_factory.mktemp("mirror"))


def _files_under(root: Path) -> list[str]:
    return sorted(p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file())


def _plan(dataset_file: str, data_root: Path):
    config = load_config(["config/config.yaml", f"config/datasets/{dataset_file}"],
                         {"data_root": str(data_root), "allow_demo_models": True})
    return resolve_run(config, REPO / "config")


def test_the_checksums_are_those_of_the_published_files():
    """The registry's sha256 against the copies in ../shared, hashed here (SOURCES.md: the
    same commit), so a checksum typed wrong fails."""
    by_name = {p.name: p for p in BENCHMARK_LISTS.rglob("*") if p.is_file()}
    registry = load_lists()
    assert registry["base_url"].endswith(registry["commit"])
    assert len(registry["commit"]) == 40
    for files in registry["datasets"].values():
        for relative, entry in files.items():
            source = entry["source"]
            shared = source.replace("datasets_splits/", "").replace("/", "_")
            copy = by_name[shared.removeprefix("labels_")]
            assert hashlib.sha256(copy.read_bytes()).hexdigest() == entry["sha256"], relative


def test_the_fetched_files_are_where_the_dataset_files_read_them(mirror, tmp_path, capsys):
    with serve(mirror) as url:
        assert main(["fetch-lists", *DATASET_FILES, "--data-root", str(tmp_path),
                     "--base-url", url]) == 0
    expected = set()
    for dataset, name in DATASET_FILES.items():
        plan = _plan(name, tmp_path).datasets[dataset]
        expected |= {Path(p).relative_to(tmp_path).as_posix() for p in plan.annotation_files()}
    assert _files_under(tmp_path) == sorted(expected)
    fetched = (tmp_path / "ucf101" / "ucf_splits_val2.txt").read_bytes()
    assert fetched == (BENCHMARK_LISTS / "vificlip-splits" / "ucf_splits_val2.txt").read_bytes()
    assert "ucf101: 4 list(s) written" in capsys.readouterr().out

    # Again: every file is there with its bytes, so nothing is fetched (no server needed).
    assert main(["fetch-lists", "hmdb51", "--data-root", str(tmp_path),
                 "--base-url", "http://127.0.0.1:9"]) == 0
    assert "hmdb51: 0 list(s) written, 4 already there" in capsys.readouterr().out


def test_a_file_whose_bytes_differ_is_refused_by_name_and_nothing_is_written(
    mirror, tmp_path, capsys
):
    tampered = tmp_path / "mirror"
    vificlip_mirror(tampered)
    val2 = tampered / "datasets_splits/hmdb_splits/val2.txt"
    val2.write_bytes(val2.read_bytes().replace(b" 0\n", b" 1\n", 1))
    data_root = tmp_path / "data"
    data_root.mkdir()
    with serve(tampered) as url:
        assert main(["fetch-lists", "hmdb51", "--data-root", str(data_root),
                     "--base-url", url]) == 1
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1, err
    assert "datasets_splits/hmdb_splits/val2.txt" in err and "hmdb_splits_val2.txt" in err
    assert "sha256 differs" in err
    # All or none: val1 had been fetched and checked, yet nothing stays, not even a temporary.
    assert list(data_root.iterdir()) == []


def test_a_server_that_is_down_gives_one_line(tmp_path, capsys):
    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    assert main(["fetch-lists", "ucf101", "--data-root", str(tmp_path),
                 "--base-url", f"http://127.0.0.1:{port}"]) == 1
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1, err
    assert err.startswith("zsar fetch-lists: error: could not fetch http://127.0.0.1:")
    assert "ConnectError" in err
    assert list(tmp_path.iterdir()) == []


def test_a_list_of_the_users_with_other_bytes_is_never_overwritten(mirror, tmp_path, capsys):
    mine = tmp_path / "ucf101" / "ucf_101_labels.csv"
    mine.parent.mkdir()
    mine.write_text("id,name\n0,mine\n")
    with serve(mirror) as url:
        assert main(["fetch-lists", "ucf101", "--data-root", str(tmp_path),
                     "--base-url", url]) == 1
    assert str(mine) in capsys.readouterr().err
    assert mine.read_text() == "id,name\n0,mine\n"
    assert _files_under(tmp_path) == ["ucf101/ucf_101_labels.csv"]


@pytest.mark.parametrize("dataset, layout", [("ucf101", official_ucf101),
                                             ("hmdb51", official_hmdb51)])
def test_missing_lists_beside_an_official_layout_name_its_dataset_file_and_the_fetch(
    dataset, layout, mirror, tmp_path
):
    layout(tmp_path)
    with pytest.raises(ConfigError) as raised:
        preflight(_plan(f"{dataset}.yaml", tmp_path), 0.5)
    message = str(raised.value)
    assert "\n" not in message
    assert message.startswith(f"missing input: {tmp_path}/{dataset}/")
    assert (f"--configfile config/config.yaml config/datasets/official/{dataset}.yaml "
            in message)
    assert f"--config data_root={tmp_path}" in message

    # The official dataset file reads that layout as it is: every split found.
    official = preflight(_plan(f"official/{dataset}.yaml", tmp_path), 0.5)
    assert not official.errors
    assert len([line for line in official.lines if ", 2 found," in line]) == 3

    # The fetch command, run as the message prints it, makes the default file's lists whole.
    command = re.search(r"zsar fetch-lists \S+ --data-root \S+$", message).group(0)
    with serve(mirror) as url:
        env = {**os.environ, "ZSAR_LISTS_URL": url,
               "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
        proc = subprocess.run(shlex.split(command), env=env, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    preflight(_plan(f"{dataset}.yaml", tmp_path), 0.5)


def test_the_official_files_read_the_class_names_the_vificlip_label_files_spell(tmp_path):
    """The same class texts either way (classInd.txt's and the split files' names against
    ViFi-CLIP's CSVs). UCF101's are in the same order too; HMDB51's official order is the
    folders' (mmaction2's map), where ViFi-CLIP's CSV puts "kick ball" before "kick"."""
    from zsar.data.adapters import read_split

    official_ucf101(tmp_path, classes=0)
    official_hmdb51(tmp_path, classes=0)
    lists = tmp_path / "ucf101/ucfTrainTestlist"
    ucf = read_split("ucf101", lists / "testlist01.txt", lists / "classInd.txt")
    hmdb = read_split("hmdb51", tmp_path / "hmdb51/testTrainMulti_7030_splits")

    def names(csv: str) -> list[str]:
        rows = (BENCHMARK_LISTS / "vificlip-labels" / csv).read_text().splitlines()[1:]
        return [row.split(",", 1)[1] for row in rows]

    assert ucf.classes == names("ucf_101_labels.csv")
    assert sorted(hmdb.classes) == sorted(names("hmdb_51_labels.csv"))
    folders = (BENCHMARK_LISTS / "mmaction2-label-maps/hmdb51_label_map.txt").read_text().split()
    assert hmdb.classes == [f.replace("_", " ") for f in folders]
    assert (len(ucf.videos), len(hmdb.videos)) == (3783, 1530)
