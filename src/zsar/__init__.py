"""zsar: zero-shot video action recognition with image-text models."""

import os

__version__ = "0.1.0"

# torch's OpenMP threads spin after every parallel region by default, waiting for the next
# one. In the embedding stage on a CPU the main process runs many short regions while its
# DataLoader workers decode on the same cores, so the spinning threads took about a core
# from them (benchmarks/RESULTS.md). Sleeping at once costs nothing measurable for large
# models, whose regions are long. libgomp reads this when torch is first imported, which
# zsar never does at import time; a value the user set is kept.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
