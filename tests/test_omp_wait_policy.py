"""Importing zsar makes torch's idle OpenMP threads sleep, unless the user chose otherwise."""

from __future__ import annotations

import os
import subprocess
import sys

PROBE = "import os, zsar; print(os.environ['OMP_WAIT_POLICY'])"


def _policy_after_import(env: dict[str, str]) -> str:
    done = subprocess.run(
        [sys.executable, "-c", PROBE], env=env, capture_output=True, text=True, check=True
    )
    return done.stdout.strip()


def test_zsar_sets_a_passive_wait_policy_before_torch_loads():
    env = {k: v for k, v in os.environ.items() if k != "OMP_WAIT_POLICY"}
    assert _policy_after_import(env) == "PASSIVE"
    # zsar itself must not import torch, or the setting would come too late to matter.
    probe = "import sys, zsar, zsar.embed, zsar.device_frames; print('torch' in sys.modules)"
    done = subprocess.run([sys.executable, "-c", probe], env=env, capture_output=True, text=True)
    assert done.stdout.strip() == "False"


def test_a_policy_the_user_set_is_kept():
    assert _policy_after_import({**os.environ, "OMP_WAIT_POLICY": "ACTIVE"}) == "ACTIVE"
