"""Every name the planner writes into a path, the workflow's wildcards read: each name
format of zsar.pipeline.plan (zsar.core.names.NameFormat) round-trips many settings through
its formatter, its parser and the pattern the Snakefile's wildcard constraints take from it;
no rule file writes a pattern of its own; and a run with more than one clip is planned on a
fresh root."""

from __future__ import annotations

import ast
import itertools
import re

import pytest
from helpers.workflow import REPO, copy_workflow, snakemake

from zsar.core import names as names_module
from zsar.core.method import VARIANTS
from zsar.core.names import (
    RUN_NAME,
    SAMPLING_NAME,
    SAMPLING_RULE_NAMES,
    SHARD_NAME,
    NameFormat,
    one_of,
    parse_shard_id,
    shard_id,
)
from zsar.pipeline.config import load_config
from zsar.pipeline.plan import (
    parse_variant_run,
    resolve_run,
    sampling_name,
    variant_runs,
)
from zsar.pipeline.stage_table import STAGES, wildcard_patterns, wildcards_of

# :g writes six digits; the last three need more to stay apart.
LAMBDAS = [0.0, 1e-05, 0.125, 0.3, 0.5, 1.0, 2.5, 10.0, 0.1234567, 0.1234568, 123456789.0]


def _sampling_settings() -> list[dict]:
    settings = []
    for rule, frames, stride, side, quality, clips in itertools.product(
        SAMPLING_RULE_NAMES, [1, 8, 16, 32, 100], [1, 4, 16], [224, 256, 340],
        [75, 90, 100], [1, 2, 3, 10],
    ):
        if rule == "tsn" and stride != 1:
            continue  # tsn reads no stride: one setting per folder
        one = {"sampling": rule, "num_frames": frames, "short_side": side,
               "jpeg_quality": quality, "clips": clips}
        settings.append({**one, "stride": stride} if rule == "stride" else one)
    return settings


# Each name format of zsar.pipeline.plan -> the settings it is checked with, as its parser reads
# them back. A format added to zsar.pipeline.plan without settings here fails the test below.
SETTINGS = {
    "SHARD_NAME": [{"index": i, "total": n} for n in (1, 7, 32, 999, 1000, 4096)
                   for i in range(n)],
    "SAMPLING_NAME": _sampling_settings(),
    "RUN_NAME": [{"variant": v} for v in VARIANTS]
    + [{"variant": v, "lambda": lam} for v in VARIANTS for lam in LAMBDAS],
}  # fmt: skip


def test_every_name_format_of_the_planner_is_checked():
    formats = {k for k, v in vars(names_module).items() if isinstance(v, NameFormat)}
    assert formats == set(SETTINGS)


@pytest.mark.parametrize("name", sorted(SETTINGS))
def test_every_name_reads_back_its_settings_and_matches_its_pattern(name):
    """format -> parse gives the settings back, so two settings never share a name, and
    the Snakefile's pattern (the same format's) matches every name it writes."""
    fmt = getattr(names_module, name)
    written = {}
    for settings in SETTINGS[name]:
        text = fmt.format(settings)
        assert re.fullmatch(fmt.pattern, text), (text, fmt.pattern)
        assert fmt.parse(text) == settings, text
        written.setdefault(text, settings)
    assert len(written) == len(SETTINGS[name])


@pytest.mark.parametrize(("fmt", "names"), [
    (SHARD_NAME, ["000-of-001.failures", "00-of-001", "1-of-1", "000-of-01", "000_of_001"]),
    (SAMPLING_NAME, ["tsn8_s256", "tsn8x4_s256_q90", "stride8_s256_q90", "tsn8_s256_q90_c",
                     "uniform8_s256_q90", "tsn8_s256_q90_c3.parquet", "000-of-001"]),
    (RUN_NAME, ["fusion", "full_lambda", "full_lambda-1", "full_lambda0.3.parquet",
                "caption_lambda0.3", "tsn8_s256_q90"]),
])  # fmt: skip
def test_names_no_format_writes_match_no_pattern(fmt, names):
    for text in names:
        assert not re.fullmatch(fmt.pattern, text), text
        with pytest.raises(ValueError, match="is no name of the form"):
            fmt.parse(text)


def test_the_planners_names_are_its_formats():
    frames = {"num_frames": 8, "sampling": "stride", "stride": 4, "short_side": 256,
              "jpeg_quality": 90, "views": {"clips": 3, "crops": 3}}
    assert sampling_name(frames) == "stride8x4_s256_q90_c3"
    # A config from before the choice of sampler, or of clips, keeps its folder.
    assert sampling_name({"num_frames": 8, "short_side": 256, "jpeg_quality": 90}) == (
        "tsn8_s256_q90")
    assert shard_id(7, 12) == "007-of-012" and parse_shard_id("007-of-012") == (7, 12)
    runs = variant_runs(list(VARIANTS), [0.3, 0.5])
    assert runs == ["baseline", "+descriptors", "+hierarchy", "+caption_lambda0.3",
                    "+caption_lambda0.5", "full_lambda0.3", "full_lambda0.5"]
    assert [parse_variant_run(r, [0.3, 0.5]) for r in ("full_lambda0.5", "baseline")] == [
        ("full", 0.5), ("baseline", 0.3)]
    assert variant_runs(list(VARIANTS), [0.3]) == list(VARIANTS)  # one λ: plain names


def test_a_run_wildcard_matches_the_planned_runs_only():
    planned = variant_runs(list(VARIANTS), [0.3, 0.5])
    others = set(variant_runs(list(VARIANTS), [0.3]) + variant_runs(list(VARIANTS), [0.7, 1]))
    pattern = one_of(planned)
    assert all(re.fullmatch(pattern, r) for r in planned)
    assert not [r for r in sorted(others - set(planned)) if re.fullmatch(pattern, r)]
    # Nothing planned: the wildcard matches nothing in a path, not even an empty name.
    assert not [p for p in ("a//b", "a/x/b") if re.fullmatch(f"a/(?:{one_of([])})/b", p)]


def _output_wildcards() -> set[str]:
    """The wildcards of every output template of the stage table, and of every rule's
    output, log and benchmark paths written in the rule files."""
    names = {n for stage in STAGES.values() for t in stage.outputs.values()
             for n in wildcards_of(t)}
    for path in [REPO / "Snakefile", *sorted((REPO / "workflow" / "rules").glob("*.smk"))]:
        section = None
        for line in path.read_text().splitlines():
            directive = re.match(r"^    (\w+):", line)
            if directive:
                section = directive[1]
            elif not line.startswith("    "):
                section = None
            if section in ("output", "log", "benchmark"):
                for literal in re.findall(r'(?<![fF])"([^"]*)"', line):
                    names.update(re.findall(r"\{(\w+)\}", literal))
    return names


def test_every_wildcard_takes_its_pattern_from_the_planner():
    plan = resolve_run(load_config([REPO / "config" / "config.yaml"]), REPO / "config")
    patterns = wildcard_patterns(plan, ["baseline"])
    wildcards = _output_wildcards()
    assert {"dataset", "sampling", "shard", "run", "model"} <= wildcards
    assert wildcards <= set(patterns), wildcards - set(patterns)
    assert patterns["sampling"] == SAMPLING_NAME.pattern
    assert patterns["shard"] == SHARD_NAME.pattern


def test_no_rule_file_writes_a_pattern():
    """The Snakefile's one wildcard_constraints block is generated; no rule constrains a
    wildcard inline ({name,regex}) or builds a regex of its own."""
    snakefile = (REPO / "Snakefile").read_text()
    block = snakefile.split("wildcard_constraints:\n", 1)[1].split("\n\n", 1)[0]
    assert block.strip() == "**wildcard_patterns(PLAN, RUNS),"
    for path in [REPO / "Snakefile", *(REPO / "workflow" / "rules").glob("*.smk")]:
        text = path.read_text()
        assert not re.search(r"\{\w+,[^\s}]", text), path
        assert "import re\n" not in text and not re.search(r"\bre\.\w+\(", text), path
        assert path.name == "Snakefile" or "wildcard_constraints" not in text, path
    ast.parse("f(**wildcard_patterns(PLAN, RUNS))")  # the block is a plain call's arguments


@pytest.mark.slow  # runs Snakemake
def test_three_clips_plan_on_a_fresh_root(tmp_path):
    workdir = copy_workflow(tmp_path / "wf")
    overlay = workdir / "clips.yaml"
    overlay.write_text("frames: {views: {clips: 3}}\n")
    done = snakemake(
        workdir, "-n", "--workflow-profile", "profiles/default", "--configfile",
        "config/config.yaml", str(overlay), timeout=300,
    )  # fmt: skip
    out = done.stdout + done.stderr
    assert done.returncode == 0, out[-3000:]
    assert "frames/tsn8_s256_q90_c3/000-of-001.parquet" in out
