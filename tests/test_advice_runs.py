"""Every command a zsar message gives as advice, run as printed from where the user would
run it: each test provokes the message, takes the command out of its backticks, runs it in
a shell, and checks that it does what the message promised.

Messages with advice, and the test that runs each:
- zsar predict without a backbone's weights (zsar.models.backbones.missing_checkpoint_message):
  test_the_fetch_command_of_zsar_predict_runs_from_another_folder
- a benchmark with demo models (zsar.pipeline.plan._refuse_demo_models_on_benchmarks):
  test_the_demo_model_refusals_fragments_make_the_run_plan
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from helpers.workflow import BENCHMARK_LISTS, copy_workflow, snakemake

# Both run Snakemake: the full suite (make test), not the fast tier.
pytestmark = pytest.mark.slow

BIN = Path(sys.executable).parent


def shell(command: str, cwd: Path) -> subprocess.CompletedProcess:
    """`command` in bash as a user's shell would run it, with the venv activated."""
    env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}",
           "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    return subprocess.run(["bash", "-c", command], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=600)


def advised(message: str) -> list[str]:
    """The commands a message quotes in backticks."""
    return re.findall(r"`([^`]+)`", message)


def test_the_fetch_command_of_zsar_predict_runs_from_another_folder(tmp_path):
    workdir = copy_workflow(tmp_path / "checkout")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "classes.txt").write_text("rotating\nsliding\n")
    predict = (f"zsar predict clip.mp4 --classes classes.txt --backbone tiny-clip "
               f"--captioner none --workdir {workdir}")
    first = shell(predict, elsewhere)
    assert first.returncode == 2, first.stderr
    [command] = advised(first.stderr)
    assert command.startswith(f"cd {workdir} && snakemake ")
    fetched = shell(command, elsewhere)
    assert fetched.returncode == 0, fetched.stderr[-3000:]
    assert (workdir / "resources" / "models" / "tiny-clip" / ".zsar-ready").is_file()
    # With the weights there, the same command gets past its setup to the video (which is
    # not there: exit 1, a failed video, not 2, a setup error).
    second = shell(predict, elsewhere)
    assert second.returncode == 1, second.stderr
    assert "zsar predict: error: cannot read clip.mp4" in second.stderr


@pytest.fixture()
def ucf101_root(tmp_path):
    """ViFi-CLIP's real UCF101 split lists and label file, and an (empty) file for each
    video of split 1's first class: enough for the preflight to find videos."""
    root = tmp_path / "data"
    folder = root / "ucf101"
    (folder / "videos").mkdir(parents=True)
    for split in (1, 2, 3):
        name = f"ucf_splits_val{split}.txt"
        (folder / name).write_bytes((BENCHMARK_LISTS / "vificlip-splits" / name).read_bytes())
    (folder / "ucf_101_labels.csv").write_bytes(
        (BENCHMARK_LISTS / "vificlip-labels" / "ucf_101_labels.csv").read_bytes())
    for line in (folder / "ucf_splits_val1.txt").read_text().splitlines()[:5]:
        (folder / "videos" / line.split()[0]).touch()
    return root


@pytest.mark.skipif(not BENCHMARK_LISTS.is_dir(), reason="needs ../shared/benchmark-lists")
def test_the_demo_model_refusals_fragments_make_the_run_plan(tmp_path, ucf101_root):
    workdir = copy_workflow(tmp_path / "wf")
    files = ["config/config.yaml", "config/datasets/ucf101.yaml"]
    values = [f"data_root={ucf101_root}"]
    refused = snakemake(workdir, "-n", "--configfile", *files, "--config", *values)
    assert refused.returncode != 0
    message = refused.stdout + refused.stderr
    [config_file, config_value] = advised(message)
    assert "last among the --configfile files" in message
    assert "among the --config values" in message
    # Each fragment put where the message says, into the command that was refused.
    for command in (
        ["snakemake", "-n", "--configfile", *files, config_file, "--config", *values],
        ["snakemake", "-n", "--configfile", *files, "--config", *values, config_value],
    ):
        planned = shell(" ".join(command), workdir)
        output = planned.stdout + planned.stderr
        assert planned.returncode == 0, (command, output[-3000:])
        assert "ucf101 split 1:" in output and "Job stats:" in output, command
