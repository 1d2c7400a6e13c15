"""Every shell command in the README and docs/*.md has something that runs it: a test that
reads it from its page and runs it as typed (dry runs for the real-data Snakemake
commands), a make target that CI runs, or a reason it cannot run here, written down.

A command added to a page without one fails this test, naming it."""

from __future__ import annotations

import re

import pytest
from test_readme_shell import PAGES, REPO, commands, shell_blocks

# (pattern of the command, what runs it). A runner is a test file, which must read the page
# the command is on; `make`, for a make target that CI or `make test` runs; or "not run: ...".
RUNNERS: list[tuple[str, str]] = [
    (r"make (demo|test|check|venv|bench-quick|test-slurm)\b.*", "make"),
    (r"make lock\b.*", "not run: resolves against PyPI and rewrites the lock (make lock, by hand)"),
    (r"source \.venv/bin/activate", "tests/test_readme_shell.py"),
    (r"snakemake .*", "tests/test_readme_commands.py"),
    (r"make report ARGS=.*", "tests/test_official_archives_run.py"),
    (r"zsar fetch-lists .*", "tests/test_official_archives_run.py"),
    (r"zsar predict resources/demo/.*", "tests/test_rerun.py"),
    (r"zsar predict clip1\.mp4 .*", "not run: needs the real openai-vit-b-16 weights and the "
                                    "user's clips; tests/test_predict.py runs the same options "
                                    "on tiny models"),
    (r"zsar config --check-reference .*", "tests/test_protocol_records.py"),
    (r"zsar explain-cache .*", "tests/test_stage_table.py"),
    (r"zsar config config/.*", "tests/test_cli_anywhere.py"),
    (r"python -c .*failures\.parquet.*", "tests/test_official_archives_run.py"),
    (r"zsar descriptors (import|export) .*", "not run as typed: it names the user's own files; "
                                             "tests/test_descriptor_files.py runs both on files "
                                             "of these shapes"),
    (r"bash benchmarks/gpu_suite\.sh --device cpu --quick", "make"),
    (r"bash benchmarks/gpu_suite\.sh --(prepare|bundle) .*", "not run: downloads wheels, then "
                                                             "needs a GPU node"),
]
# Snakemake commands that test_readme_commands does not plan (it reads the README's real
# run and docs/slurm.md), each with its reason.
# Runners that read every page (PAGES).
EVERY_PAGE = {"tests/test_readme_shell.py"}
SNAKEMAKE_ELSEWHERE = {
    "docs/formats.md": "not run as typed: it names the user's own descriptors overlay "
                       "(ucf101-mine.yaml); tests/test_descriptor_sources_run.py runs one",
}


def page_commands() -> list[tuple[str, str]]:
    return [(page.relative_to(REPO).as_posix(), command)
            for page in PAGES for block in shell_blocks(page.read_text())
            for command in commands(block)]


def runner_of(page: str, command: str) -> str:
    matches = [runner for pattern, runner in RUNNERS if re.fullmatch(pattern, command)]
    assert len(matches) == 1, f"{page}: `{command}` matches {len(matches)} runners"
    if command.startswith("snakemake ") and page in SNAKEMAKE_ELSEWHERE:
        return SNAKEMAKE_ELSEWHERE[page]
    return matches[0]


@pytest.mark.parametrize(("page", "command"), page_commands())
def test_each_command_has_a_runner(page, command):
    runner = runner_of(page, command.split("  #")[0].split(" # ")[0].strip())
    if runner == "make" or runner.startswith("not run") or runner in EVERY_PAGE:
        return
    test_file = REPO / runner
    assert test_file.is_file(), runner
    # The test reads the command from its page, so the page's words are what runs.
    assert page in test_file.read_text() or page == "README.md" and "README" in \
        test_file.read_text(), f"{runner} does not read {page}"
