"""Every name the planner writes into a path, the workflow's wildcards read: the Snakefile's
patterns (zsar.plan.SAMPLING_PATTERN, SHARD_PATTERN) against what zsar.plan's formatters
produce, and a run with more than one clip planned on a fresh root."""

from __future__ import annotations

import itertools
import re

import pytest
from helpers.workflow import REPO, copy_workflow, snakemake

from zsar.plan import (
    SAMPLING_NAME_PARTS,
    SAMPLING_PATTERN,
    SHARD_PATTERN,
    sampling_name,
    shard_id,
)


@pytest.mark.parametrize(
    "rule, num_frames, short_side, quality, clips, crops",
    list(itertools.product(SAMPLING_NAME_PARTS, [1, 8, 16, 32], [224, 256, 340], [75, 90, 100],
                           [1, 2, 3, 10], [1, 3])),
)
def test_every_sampling_name_matches_the_wildcard(rule, num_frames, short_side, quality, clips,
                                                  crops):
    frames = {
        "num_frames": num_frames,
        "sampling": rule,
        "stride": 16,
        "short_side": short_side,
        "jpeg_quality": quality,
        "views": {"clips": clips, "crops": crops},
    }
    name = sampling_name(frames)
    assert re.fullmatch(SAMPLING_PATTERN, name), name
    assert ("_c" in name) == (clips > 1)  # one clip keeps the old folder: nothing re-decoded
    assert name.startswith(rule)


def test_sampling_names_tell_every_setting_apart():
    """Two frame settings that decode different frames never share a folder."""
    settings = [
        {"num_frames": n, "sampling": rule, "stride": stride, "short_side": 256,
         "jpeg_quality": 90, "views": {"clips": clips}}
        for rule, n, stride, clips in itertools.product(
            SAMPLING_NAME_PARTS, [8, 16], [4, 16], [1, 3])
        if rule == "stride" or stride == 16  # tsn reads no stride
    ]  # fmt: skip
    names = [sampling_name(f) for f in settings]
    assert len(set(names)) == len(names)
    assert sampling_name({"num_frames": 8, "short_side": 256, "jpeg_quality": 90}) == (
        "tsn8_s256_q90"  # a config from before the choice of sampler keeps its folder
    )


@pytest.mark.parametrize("total", [1, 7, 32, 999, 1000, 4096])
def test_every_shard_id_matches_the_wildcard(total):
    ids = [shard_id(i, total) for i in range(total)]
    assert all(re.fullmatch(SHARD_PATTERN, one) for one in ids), [
        one for one in ids if not re.fullmatch(SHARD_PATTERN, one)
    ]
    assert len(set(ids)) == total


def test_the_snakefile_takes_its_patterns_from_the_planner():
    snakefile = (REPO / "Snakefile").read_text()
    assert "sampling=SAMPLING_PATTERN" in snakefile and "shard=SHARD_PATTERN" in snakefile


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
