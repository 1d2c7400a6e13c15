"""`zsar config` and `zsar models` from a folder that is not the checkout, as `zsar predict`
already runs: they read the checkout's config/ (or --workdir's); files the user names stay
relative to where the command runs."""

import os
import subprocess
import sys
from pathlib import Path

import yaml
from helpers.workflow import REPO

BIN = Path(sys.executable).parent


def zsar(cwd, *args):
    return subprocess.run(
        [sys.executable, "-m", "zsar.cli", *args], cwd=cwd, capture_output=True, text=True,
        timeout=120,
    )


def test_config_from_another_folder_reads_the_checkouts_config(tmp_path):
    (tmp_path / "mine.yaml").write_text("data_root: /data/mine\n")
    proc = zsar(tmp_path, "config", "config/config.yaml", "mine.yaml")
    assert proc.returncode == 0, proc.stderr
    config = yaml.safe_load(proc.stdout)
    assert config["data_root"] == "/data/mine"
    shipped = yaml.safe_load((REPO / "config" / "config.yaml").read_text())
    assert config["datasets"] == shipped["datasets"]


def test_models_from_another_folder_lists_the_checkouts_registry(tmp_path):
    proc = zsar(tmp_path, "models", "--tsv")
    assert proc.returncode == 0, proc.stderr
    names = {line.split("\t")[1] for line in proc.stdout.splitlines()[1:]}
    shipped = yaml.safe_load((REPO / "config" / "models.yaml").read_text())
    assert names == {name for section in shipped.values() for name in section}


def test_a_workdir_without_the_registry_is_one_line(tmp_path):
    proc = zsar(tmp_path, "models", "--workdir", str(tmp_path))
    assert proc.returncode == 2
    assert proc.stderr.splitlines() == [
        "zsar models: error: config/models.yaml: [Errno 2] No such file or directory: "
        "'config/models.yaml'"
    ]


def test_the_configuration_pages_command_as_typed(tmp_path):
    """docs/configuration.md's `zsar config` command, typed in another folder."""
    page = (REPO / "docs" / "configuration.md").read_text()
    (typed,) = [line for line in page.splitlines() if line.startswith("zsar config config/")]
    proc = subprocess.run(["bash", "-c", typed], cwd=tmp_path, capture_output=True, text=True,
                          timeout=120, env={**os.environ, "PATH": f"{BIN}:{os.environ['PATH']}"})
    assert proc.returncode == 0, proc.stderr
    assert yaml.safe_load(proc.stdout)["datasets"] == ["ucf101"]
