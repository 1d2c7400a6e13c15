"""Runs tests/test_device_frames.py here (on the GPU too, where there is one) for the GPU suite.

The tests compare the device JPEG path (zsar.models.device_frames) with the PIL worker path: pixels
within two grey levels, video embeddings within fp16 tolerance. The last line is
machine-readable:

    device_equivalence=passed|failed exit=N devices=cpu,cuda
"""

from __future__ import annotations

import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def main() -> int:
    import pytest
    import torch

    devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    code = int(
        pytest.main(["-q", "-p", "no:cacheprovider", str(REPO / "tests/test_device_frames.py")])
    )
    verdict = "passed" if code == 0 else "failed"
    print(f"device_equivalence={verdict} exit={code} devices={','.join(devices)}")
    return code


if __name__ == "__main__":
    sys.exit(main())
