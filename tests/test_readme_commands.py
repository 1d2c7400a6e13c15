"""The README's real-run commands and the SLURM page's, copied as they are, plan a run
(Snakemake dry runs) on a data root laid out the way they say: UCF101 as its official
archives unpack (helpers.official_layouts), K400 with ViFi-CLIP's lists; real list files
from ../shared/benchmark-lists."""

from __future__ import annotations

import re
import shlex
import shutil
from pathlib import Path

import pytest
from helpers.official_layouts import official_ucf101
from helpers.workflow import BENCHMARK_LISTS, REPO, copy_workflow, snakemake

pytestmark = pytest.mark.slow  # runs the workflow

# (page, the heading its real-run commands follow; None: the whole page)
SECTIONS = (("README.md", "## A real run"), ("docs/slurm.md", None))
# The files the SLURM page says to put in a benchmark's folder (ViFi-CLIP's lists).
LISTS = {
    "k400": ["vificlip-splits/k400_splits_val.txt", "vificlip-labels/kinetics_400_labels.csv"],
}


def section_text(page: str, heading: str | None) -> str:
    text = (REPO / page).read_text()
    if heading is None:
        return text
    return text.split(heading, 1)[1].split("\n## ", 1)[0]


def readme_commands() -> list[str]:
    """Every `snakemake ...` command of the README's real run and of the SLURM page, as one
    line each."""
    commands = []
    for page, heading in SECTIONS:
        for block in re.findall(r"```sh\n(.*?)```", section_text(page, heading), re.S):
            text = re.sub(r"\\\n\s*", "", block)  # join continued lines
            commands += [line.strip() for line in text.splitlines()
                         if line.strip().startswith("snakemake ")]
    return commands


@pytest.fixture(scope="module")
def data_root(tmp_path_factory) -> Path:
    if not BENCHMARK_LISTS.is_dir():
        pytest.skip(f"{BENCHMARK_LISTS} is not here")
    root = tmp_path_factory.mktemp("data")
    official_ucf101(root, classes=1)  # the README's layout: the archives as they unpack
    for dataset, files in LISTS.items():
        folder = root / dataset
        folder.mkdir()
        for name in files:
            shutil.copy(BENCHMARK_LISTS / name, folder / Path(name).name)
            if "splits" in name:  # a video of each split, in a class folder as unpacked
                listed = (BENCHMARK_LISTS / name).read_text().split()[0]
                video = folder / "videos" / "SomeClass" / Path(listed).name
                video.parent.mkdir(parents=True, exist_ok=True)
                video.touch()
    return root


def test_the_readme_names_real_models_in_every_command():
    commands = readme_commands()
    assert len(commands) >= 5, commands
    for command in commands:
        if "--configfile" in command:
            assert "config/runs/" in command, command


@pytest.mark.parametrize("command", readme_commands())
def test_each_readme_command_plans_a_run(command, data_root, tmp_path):
    workdir = copy_workflow(tmp_path / "wf")
    args = shlex.split(command.replace("data_root=/data", f"data_root={data_root}"))[1:]
    if "-n" not in args:
        args.insert(0, "-n")
    proc = snakemake(workdir, *args, timeout=300)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-4000:]
    assert "zsar preflight:" in out and "demo models" not in out
    assert "Job stats" in out or "Nothing to be done" in out
