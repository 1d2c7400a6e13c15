"""Issue #24's first acceptance point, as a user meets it: UCF101 and HMDB51 laid out as
their official archives unpack (generated clips, the real list files), the README's
real-run command and its report command, copied from the README, with demo models allowed
as the README says for a smoke run. The tables say which rows demo models made and count
the failed videos; the report names the runs it holds."""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from helpers.official_layouts import official_hmdb51, official_ucf101, serve, vificlip_mirror
from helpers.secret_scan import readable_texts
from helpers.workflow import BENCHMARK_LISTS, REPO, copy_workflow

pytestmark = pytest.mark.slow  # runs the workflow

README = REPO / "README.md"
SMOKE = "allow_demo_models=true"


def readme_line(starts: str) -> str:
    """The README's one command (continued lines joined) that starts with `starts`."""
    lines = [
        line.strip()
        for block in re.findall(r"```sh\n(.*?)```", README.read_text(), re.S)
        for line in re.sub(r"\\\n\s*", "", block).splitlines()
        if line.strip().startswith(starts)
    ]  # fmt: skip
    assert len(lines) == 1, lines
    return lines[0]


def as_smoke_run(command: str, dataset: str, data_root: Path) -> str:
    """The README's command for `dataset` with the demo models: the overlay left out and
    allow_demo_models=true among the --config values, as the README's smoke-run sentence
    says; its /data is the test's data root."""
    command = command.replace("ucf101", dataset)
    command = command.replace("data_root=/data", f"data_root={data_root}")
    command = re.sub(r"\s*config/runs/\S+", "", command)
    return command.replace(f"data_root={data_root}", f"data_root={data_root} {SMOKE}")


def shell(command: str, cwd: Path) -> subprocess.CompletedProcess:
    bin_dir = Path(sys.executable).parent
    env = {"PATH": f"{bin_dir}:/usr/local/bin:/usr/bin:/bin", "HOME": str(Path.home()),
           "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    return subprocess.run(["bash", "-c", command], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=1200)


def checkout_copy(dest: Path) -> Path:
    """The workflow, and what `make report` needs: the Makefile, the lock's inputs and the
    checkout's .venv. The inputs are dated at the epoch, so make finds .venv up to date and
    never re-syncs the checkout's .venv from here."""
    workdir = copy_workflow(dest)
    for name in ("Makefile", "pyproject.toml", "requirements.lock"):
        shutil.copy(REPO / name, workdir / name)
        os.utime(workdir / name, (0, 0))
    shutil.copytree(REPO / "tools", workdir / "tools")
    (workdir / ".venv").symlink_to(REPO / ".venv")
    return workdir


@pytest.fixture(scope="module")
def official_run(tmp_path_factory):
    if not BENCHMARK_LISTS.is_dir():
        pytest.skip(f"{BENCHMARK_LISTS} is not here")
    if not (REPO / ".venv" / ".zsar-synced").is_file():
        pytest.skip("no .venv built by make here")
    data_root = tmp_path_factory.mktemp("data")
    ucf = official_ucf101(data_root, classes=1)
    official_hmdb51(data_root, classes=1)
    # A download cut short: one listed UCF101 video that no decoder can read.
    broken = data_root / "ucf101" / "UCF-101" / ucf.clips[1][0]
    broken.write_bytes(broken.read_bytes()[:300])
    workdir = checkout_copy(tmp_path_factory.mktemp("checkout"))
    run = readme_line("snakemake --cores all --configfile")
    logs = {}
    for dataset in ("ucf101", "hmdb51"):
        proc = shell(as_smoke_run(run, dataset, data_root), workdir)
        assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
        logs[dataset] = proc.stdout + proc.stderr
    report = shell(as_smoke_run(readme_line("make report"), "hmdb51", data_root), workdir)
    assert report.returncode == 0, report.stdout[-3000:] + report.stderr[-3000:]
    return workdir, logs


def test_the_readme_commands_name_the_official_layout():
    assert "config/datasets/official/ucf101.yaml" in readme_line("snakemake --cores all")
    assert "config/datasets/official/ucf101.yaml" in readme_line("make report")
    assert f"with `{SMOKE}` among the `--config` values" in " ".join(README.read_text().split())


def test_each_dataset_ends_with_its_counts(official_run):
    _, logs = official_run
    assert re.search(r"zsar: ucf101: \d+ videos evaluated, 1 failed \(listed in "
                     r"results/ucf101/failures.parquet\), \d+ missing", logs["ucf101"])
    assert re.search(r"zsar: hmdb51: \d+ videos evaluated, 0 failed", logs["hmdb51"])


def test_tables_mark_demo_rows_and_count_failures(official_run):
    workdir, _ = official_run
    tables = workdir / "results" / "tables"
    markdown = (tables / "results.md").read_text()
    header = next(line for line in markdown.splitlines() if line.startswith("| dataset |"))
    assert "| failed |" in header
    for dataset in ("ucf101", "hmdb51"):
        rows = [line for line in markdown.splitlines()
                if line.startswith(f"| {dataset} | tiny-clip |")]
        assert len(rows) == 5, dataset
        assert all("demo models: tiny-clip (backbone)" in row for row in rows), rows
    failed = header.split(" | ").index("failed")
    ucf_row = next(line for line in markdown.splitlines() if line.startswith("| ucf101 |"))
    assert ucf_row.split(" | ")[failed].strip() == "1"
    assert "demo_models" in (tables / "results.csv").read_text().splitlines()[0]
    assert r"$^{\ddagger}$" in (tables / "results.tex").read_text()
    metrics = json.loads(
        (workdir / "results/hmdb51/metrics/tiny-clip/baseline.json").read_text())
    assert metrics["models"]["backbone"] == {"name": "tiny-clip", "demo": True}


def test_the_report_names_the_runs_of_its_config(official_run):
    workdir, _ = official_run
    pages = [text for where, text in readable_texts(workdir / "results/report.html")
             if "URI" in where]
    runs = next(page for page in pages if "the runs it holds" in page)
    # The report is of the config it was given (HMDB51's, the last run): it says so.
    assert "<tr><td>hmdb51</td><td>tiny-clip</td><td>baseline</td>" in runs
    assert "<td>ucf101</td>" not in runs
    assert "<code>config/datasets/official/hmdb51.yaml</code>" in runs
    tables = next(page for page in pages if "<h2>All runs</h2>" in page)
    assert "demo models: tiny-clip (backbone)" in tables and "<th>failed</th>" in tables


def test_the_readme_smoke_command_is_a_command_the_user_can_type():
    command = as_smoke_run(readme_line("snakemake --cores all"), "ucf101", Path("/data"))
    assert shlex.split(command)[-1] == SMOKE


def test_the_failures_pages_command_reads_the_failed_video(official_run):
    """docs/failures.md's command that prints a run's failures, typed in the run's folder."""
    workdir, _ = official_run
    page = (REPO / "docs" / "failures.md").read_text()
    (typed,) = [line for line in page.splitlines() if line.startswith("python -c ")]
    proc = shell(typed, workdir)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split()[:3] == ["video_id", "...", "reason"]
    assert "rows x 3 columns]" in proc.stdout


def test_the_readmes_fetch_lists_command_from_a_mirror(tmp_path):
    """The README's `zsar fetch-lists` command as typed, its /data a fresh data root and the
    lists served from a local copy of ViFi-CLIP's repository (the tests have no internet)."""
    if not BENCHMARK_LISTS.is_dir():
        pytest.skip(f"{BENCHMARK_LISTS} is not here")
    typed = readme_line("zsar fetch-lists ")
    data_root = tmp_path / "data"
    data_root.mkdir()
    with serve(vificlip_mirror(tmp_path / "mirror")) as url:
        proc = shell(f"ZSAR_LISTS_URL={url} " + typed.replace("/data", str(data_root)), tmp_path)
    assert proc.returncode == 0, proc.stderr
    for split in (1, 2, 3):
        name = f"ucf_splits_val{split}.txt"
        assert (data_root / "ucf101" / name).read_bytes() == \
            (BENCHMARK_LISTS / "vificlip-splits" / name).read_bytes()
