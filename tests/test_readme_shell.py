"""Every shell command in the README and in docs/*.md, copied as it is into a fresh shell
after `make demo` (which built .venv), finds its program: the README says to activate .venv
right after its first two commands, and this test does what it says, in a shell started with
an empty environment. The README stays short enough to read in five minutes."""

from __future__ import annotations

import re
import shlex
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
README = REPO / "README.md"
# The pages a user reads: the README and the docs it links (DESIGN.md is for developers,
# but its commands must work as well).
PAGES = [README, *sorted((REPO / "docs").glob("*.md"))]
README_MAX_LINES = 300
ACTIVATE = "source .venv/bin/activate"
# Shell words that are no program to look up.
BUILTINS = {"source", "cd", "export"}


def shell_blocks(text: str) -> list[str]:
    """The README's ```sh blocks, in order (indented ones in lists included)."""
    return [
        re.sub(r"^[ \t]*", "", block, flags=re.M)
        for block in re.findall(r"^[ \t]*```sh\n(.*?)^[ \t]*```", text, re.S | re.M)
    ]


def commands(block: str) -> list[str]:
    """One line per command: continued lines joined, comments and blank lines dropped."""
    joined = re.sub(r"\\\n\s*", " ", block)
    return [
        line.strip()
        for line in joined.splitlines()
        if line.strip() and not line.strip().startswith("#")
    ]


def program(command: str) -> str:
    words = shlex.split(command, comments=True)
    while words and re.fullmatch(r"\w+=.*", words[0]):  # VAR=value before the program
        words.pop(0)
    return words[0]


def make_targets() -> set[str]:
    text = (REPO / "Makefile").read_text()
    return set(re.findall(r"^([A-Za-z][\w-]*)\s*:(?!=)", text, re.M))


def test_the_readme_says_to_activate_the_venv_right_after_its_first_commands():
    blocks = shell_blocks(README.read_text())
    assert [program(c) for c in commands(blocks[0])] == ["make", "make"]
    assert commands(blocks[1]) == [ACTIVATE]


def test_every_readme_shell_command_finds_its_program():
    if not (REPO / ".venv" / "bin" / "activate").is_file():
        pytest.skip("no .venv here: `make demo` or `make test` builds it")
    every = [c for page in PAGES for block in shell_blocks(page.read_text())
             for c in commands(block)]
    assert len(every) >= 20, every
    programs = sorted({program(c) for c in every} - BUILTINS)
    assert {"make", "snakemake", "zsar", "bash", "python"} <= set(programs), programs

    # A fresh shell: no variables but HOME and the system's PATH, then the README's line.
    script = f"{ACTIVATE}\n" + "".join(
        f"command -v {shlex.quote(name)} >/dev/null || echo {shlex.quote(name)}\n"
        for name in programs
    )
    done = subprocess.run(
        ["env", "-i", f"HOME={Path.home()}", "PATH=/usr/local/bin:/usr/bin:/bin", "bash",
         "--norc", "--noprofile", "-c", script],
        cwd=REPO, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == [], f"not found after `{ACTIVATE}`: {done.stdout.split()}"

    targets = make_targets()
    unknown_targets = [c for c in every if program(c) == "make" and c.split()[1] not in targets]
    assert not unknown_targets, f"make targets the Makefile lacks: {unknown_targets}"
    scripts = [shlex.split(c)[1] for c in every if program(c) == "bash"]
    assert all((REPO / path).is_file() for path in scripts), scripts


def test_the_readme_is_short_and_runs_a_benchmark_before_the_statistics():
    text = README.read_text()
    assert len(text.splitlines()) <= README_MAX_LINES
    headings = re.findall(r"^## (.*)$", text, re.M)
    assert headings[1].startswith("A real run"), headings
    assert "intervals" not in " ".join(headings[:2]).lower()


def test_every_page_the_readme_links_is_there():
    linked = re.findall(r"\]\(((?:docs/)?[\w.-]+\.md)(?:#[\w-]+)?\)", README.read_text())
    assert len(linked) >= 10, linked
    missing = [path for path in linked if not (REPO / path).is_file()]
    assert not missing, missing
    # And every docs page is linked from the README.
    pages = {f"docs/{p.name}" for p in PAGES[1:]}
    assert pages <= set(linked), pages - set(linked)
