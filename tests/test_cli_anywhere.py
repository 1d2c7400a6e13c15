"""`zsar config` and `zsar models` from a folder that is not the checkout, as `zsar predict`
already runs: they read the checkout's config/ (or --workdir's); files the user names stay
relative to where the command runs."""

import subprocess
import sys

import yaml
from helpers.workflow import REPO


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
