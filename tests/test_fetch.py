"""Pre-download: fetch_model and the fetch_model rule, against a local HTTP server and file URLs."""

from __future__ import annotations

import functools
import hashlib
import http.server
import json
import threading
from pathlib import Path

import pytest
import yaml
from helpers.workflow import REPO, copy_workflow, snakemake

from zsar.models.fetch import (
    BUILDERS,
    ChecksumError,
    FetchError,
    fetch_model,
    select_repo_files,
    verify_checksums,
)
from zsar.models.registry import READY_FILE, get_entry, load_registry

PAYLOAD = bytes(range(256)) * 4096  # 1 MiB: several streamed chunks
GOOD_SHA = hashlib.sha256(PAYLOAD).hexdigest()
BAD_SHA = hashlib.sha256(b"something else").hexdigest()


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    """(base URL, folder) of an HTTP server on 127.0.0.1 serving a folder with weights.bin."""
    folder = tmp_path_factory.mktemp("served")
    (folder / "weights.bin").write_bytes(PAYLOAD)
    handler = functools.partial(_QuietHandler, directory=str(folder))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}", folder
    server.shutdown()
    thread.join()


def _files(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir()) if folder.exists() else []


@pytest.mark.parametrize("scheme", ["http", "file"])
def test_download_with_checksum(tmp_path, served, scheme):
    base, folder = served
    url = f"{base}/weights.bin" if scheme == "http" else (folder / "weights.bin").as_uri()
    ready = fetch_model({"name": "m", "url": url, "sha256": GOOD_SHA}, tmp_path)
    model = tmp_path / "models" / "m"
    assert ready == model / READY_FILE
    assert (model / "weights.bin").read_bytes() == PAYLOAD
    record = json.loads(ready.read_text())
    assert record["files"] == {"weights.bin": len(PAYLOAD)} and record["sha256"] == GOOD_SHA
    # Fetching again keeps the verified file and re-marks the folder ready.
    fetch_model({"name": "m", "url": url, "sha256": GOOD_SHA}, tmp_path)
    assert _files(model) == [READY_FILE, "weights.bin"]


@pytest.mark.parametrize("scheme", ["http", "file"])
def test_checksum_mismatch_is_an_error_and_leaves_nothing(tmp_path, served, scheme):
    base, folder = served
    url = f"{base}/weights.bin" if scheme == "http" else (folder / "weights.bin").as_uri()
    with pytest.raises(ChecksumError, match=GOOD_SHA):
        fetch_model({"name": "m", "url": url, "sha256": BAD_SHA}, tmp_path)
    assert _files(tmp_path / "models" / "m") == []  # no weights, no temp file, no marker


def test_unreachable_sources_are_errors(tmp_path, served):
    base, _ = served
    with pytest.raises(FetchError, match="404"):
        fetch_model({"name": "m", "url": f"{base}/missing.bin"}, tmp_path)
    with pytest.raises(FetchError, match="no such file"):
        fetch_model({"name": "m", "url": (tmp_path / "nope.bin").as_uri()}, tmp_path)
    with pytest.raises(FetchError, match="names no source"):
        fetch_model({"name": "m", "backend": "open_clip"}, tmp_path)
    assert not (tmp_path / "models" / "m" / READY_FILE).exists()


def test_hand_downloaded_checkpoint_is_checked_not_fetched(tmp_path):
    entry = {
        "name": "vifi",
        "local_file": "vifi.pth",
        "download_url": "https://example.org/vifi",
        "sha256": GOOD_SHA,
    }
    with pytest.raises(FetchError) as err:
        fetch_model(entry, tmp_path)
    assert "https://example.org/vifi" in str(err.value)
    assert str(tmp_path / "models" / "vifi" / "vifi.pth") in str(err.value)
    checkpoint = tmp_path / "models" / "vifi" / "vifi.pth"
    checkpoint.write_bytes(b"not the published file")
    with pytest.raises(ChecksumError):
        fetch_model(entry, tmp_path)
    assert checkpoint.exists()  # the user's own download is never deleted
    checkpoint.write_bytes(PAYLOAD)
    assert fetch_model(entry, tmp_path).is_file()


def test_tiny_build_and_served_entries(tmp_path):
    registry = load_registry(REPO / "config" / "models.yaml")
    ready = fetch_model(get_entry(registry, "backbones", "tiny-clip"), tmp_path)
    record = json.loads(ready.read_text())
    assert record["fetched_by"] == "build"
    assert set(record["files"]) == {"open_clip_config.json", "open_clip_model.safetensors"}
    served_entry = {"name": "chat", "backend": "openai", "base_url": "http://localhost:8000/v1"}
    assert json.loads(fetch_model(served_entry, tmp_path, "llms").read_text())["fetched_by"] is None
    assert BUILDERS["open_clip"].__name__ == "build_tiny_open_clip"
    with pytest.raises(FetchError, match="build.family"):
        fetch_model({"name": "x", "build": {"family": "nope"}}, tmp_path)


def test_hub_file_selection_takes_one_copy_of_the_weights():
    timm_repo = [
        ".gitattributes",
        "README.md",
        "config.json",
        "model.safetensors",  # timm's layout of the same weights
        "open_clip_config.json",
        "open_clip_model.safetensors",
        "open_clip_pytorch_model.bin",
        "special_tokens_map.json",
        "spiece.model",
        "tokenizer.json",
        "tokenizer_config.json",
    ]
    assert select_repo_files(timm_repo, "open_clip") == [
        "open_clip_config.json",
        "open_clip_model.safetensors",
        "special_tokens_map.json",
        "spiece.model",
        "tokenizer.json",
        "tokenizer_config.json",
    ]
    assert "open_clip_pytorch_model.bin" in select_repo_files(
        timm_repo, "open_clip", weights="open_clip_pytorch_model.bin"
    )
    transformers_repo = [
        "config.json",
        "flax_model.msgpack",
        "merges.txt",
        "model.safetensors",
        "onnx/model.onnx",
        "preprocessor_config.json",
        "pytorch_model.bin",
        "tf_model.h5",
        "tokenizer.json",
        "vocab.json",
        "modeling_custom.py",
    ]
    assert select_repo_files(transformers_repo, "transformers") == [
        "config.json",
        "merges.txt",
        "model.safetensors",
        "preprocessor_config.json",
        "tokenizer.json",
        "vocab.json",
    ]
    assert "modeling_custom.py" in select_repo_files(
        transformers_repo, "transformers", remote_code=True
    )
    sharded_bin = [
        "config.json",
        "pytorch_model-00001-of-00002.bin",
        "pytorch_model-00002-of-00002.bin",
    ]
    assert select_repo_files(sharded_bin, "transformers") == sharded_bin
    with pytest.raises(FetchError, match="no open_clip weights"):
        select_repo_files(["config.json", "model.safetensors"], "open_clip")


def test_published_checksums_are_verified(tmp_path):
    (tmp_path / "a.bin").write_bytes(PAYLOAD)
    verify_checksums(tmp_path, {"a.bin": GOOD_SHA.upper()})
    with pytest.raises(ChecksumError):
        verify_checksums(tmp_path, {"a.bin": BAD_SHA})
    assert not (tmp_path / "a.bin").exists()


@pytest.mark.slow
def test_fetch_model_rule(tmp_path, served):
    """The rule itself: a good download is marked ready, a checksum mismatch fails the job."""
    base, _ = served
    workdir = copy_workflow(tmp_path / "wf")
    registry = yaml.safe_load((REPO / "config" / "models.yaml").read_text())
    registry["backbones"]["served-good"] = {
        "backend": "open_clip",
        "url": f"{base}/weights.bin",
        "sha256": GOOD_SHA,
    }
    registry["backbones"]["served-bad"] = {
        "backend": "open_clip",
        "url": f"{base}/weights.bin",
        "sha256": BAD_SHA,
    }
    (workdir / "models.yaml").write_text(yaml.safe_dump(registry))
    resources = tmp_path / "res"
    config = ["--config", "models=models.yaml", f"resources={resources}"]

    good = snakemake(workdir, "-c1", *config, "--", f"{resources}/models/served-good/{READY_FILE}")
    assert good.returncode == 0, good.stderr[-3000:]
    assert (resources / "models" / "served-good" / "weights.bin").read_bytes() == PAYLOAD
    assert (resources / "models" / "served-good" / READY_FILE).is_file()

    bad = snakemake(workdir, "-c1", *config, "--", f"{resources}/models/served-bad/{READY_FILE}")
    assert bad.returncode != 0
    assert _files(resources / "models" / "served-bad") == []
    log_path = workdir / "results" / "logs" / "fetch_model" / "served-bad.log"
    log = log_path.read_text()
    assert "sha256" in log and GOOD_SHA in log
    # The console (the profile prints a failed job's log) gets the one line and the log's
    # path; the traceback is kept beside the log, which the line names.
    console = bad.stdout + bad.stderr
    assert "Traceback" not in console and "Traceback" not in log
    assert "results/logs/fetch_model/served-bad.log" in console
    assert f"(traceback: {log_path.relative_to(workdir)}.traceback)" in log
    assert "ChecksumError" in Path(f"{log_path}.traceback").read_text()
