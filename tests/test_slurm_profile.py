"""The SLURM profile sizes every rule that can ask for a GPU.

A rule whose `resources:` has `gpu=` gets `sbatch --gpus=1` for a GPU backend, but its
CPUs per GPU, memory and wall time come from `set-resources` in profiles/slurm/config.yaml.
A rule missing there runs unsized on a real cluster, and the live test cluster
(tests/slurm/run_slurm_demo.sh, which turns the profile's GPU rules into CPU jobs) refuses
it: this is how `embed_class_names` reached CI without an entry.
"""

from __future__ import annotations

import re
from pathlib import Path

import yaml
from helpers.envs import rule_bodies

REPO = Path(__file__).resolve().parent.parent
PROFILE = REPO / "profiles" / "slurm" / "config.yaml"
GPU_RESOURCE = re.compile(r"^[ \t]+gpu\s*=", re.MULTILINE)


def rules_that_ask_for_a_gpu() -> set[str]:
    rule_files = (REPO / "workflow" / "rules").glob("*.smk")
    return {name for name, _, body in rule_bodies(rule_files) if GPU_RESOURCE.search(body)}


def test_the_slurm_profile_sizes_every_rule_that_asks_for_a_gpu():
    rules = rules_that_ask_for_a_gpu()
    # The reader finds what it must: the stages that run models.
    assert {"embed_videos", "embed_class_names", "caption_shard", "descriptors"} <= rules
    sized = set(yaml.safe_load(PROFILE.read_text())["set-resources"])
    missing = sorted(rules - sized)
    assert not missing, (
        f"{PROFILE.relative_to(REPO)}: set-resources has no entry for {missing}, "
        "rules whose resources ask for a GPU"
    )
