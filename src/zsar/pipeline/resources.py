"""What each rule's job asks the scheduler for: memory and wall time from the size of its input.

Every rule's `resources:` read these (workflow/rules/common.smk: `mem_mb(rule)` and
`runtime(rule)`), on one machine (Snakemake's --resources mem_mb=... caps the sum) and on
SLURM (the executor plugin turns them into sbatch --mem and --time). A job asks for

    mem_mb  = MARGIN x (base_mb + mb_per_input_mb x the size of its inputs in MB),
              at least MIN_MB
    runtime = base_min + min_per_input_gb x the size of its inputs in GB   (minutes)

and a resubmitted job (profiles/slurm retries once) asks for RETRY_GROWTH times more per
attempt, so a job killed for memory gets another chance with more.

The downstream rules' numbers are fits to benchmarks/downstream_scale.py (the peak RSS and
wall time of every job at 20,000 and 110,000 videos, 400 and 700 classes, recorded in
benchmarks/downstream_scale.json and benchmarks/RESULTS.md); tests/test_resources.py checks
that each request covers every peak measured there. Their input is mostly embeddings
(about 2 KB a video for 512-d vectors, twice that with captions), and since those are read
a block at a time the slope is small: what still grows is a few hundred bytes per video
(the scores table, the hits the intervals resample). The model rules' memory is their model
(weights, activations), set by the site in profiles/slurm's `set-resources` where it runs
on a GPU; their base here is what they need on a CPU. docs/resources.md says how to refit.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

# Over the fit: the fits are peaks of one machine's runs; another machine's allocator,
# library builds and page sizes differ.
MARGIN = 1.3
RETRY_GROWTH = 1.5
# No job asks for less: the small report jobs peak near 140 MB here, and another machine's
# Python and library builds can need more before a job reads anything.
MIN_MB = 500


@dataclass(frozen=True)
class Need:
    """A rule's memory and wall time as lines in the size of its inputs (those named in
    `inputs`, else all: the explanation pages name the frames as an input, but read one
    picture per video shown)."""

    base_mb: float
    mb_per_input_mb: float
    base_min: float = 10
    min_per_input_gb: float = 1
    inputs: tuple[str, ...] = ()

    def input_mb(self, sizes: dict[str, float]) -> float:
        """The inputs that count, from each input's size in MB (by name)."""
        return sum(mb for name, mb in sizes.items() if not self.inputs or name in self.inputs)

    def mem_mb(self, input_mb: float, attempt: int = 1) -> int:
        fit = self.base_mb + self.mb_per_input_mb * max(0.0, input_mb)
        return math.ceil(max(MIN_MB, MARGIN * fit) * RETRY_GROWTH ** max(0, attempt - 1))

    def runtime(self, input_mb: float, attempt: int = 1) -> int:
        fit = self.base_min + self.min_per_input_gb * max(0.0, input_mb) / 1000
        return math.ceil(fit * RETRY_GROWTH ** max(0, attempt - 1))


NEEDS: dict[str, Need] = {
    # The dataset's lists and folders: small tables, read whole.
    "demo_data": Need(1000, 1.0),
    "manifest": Need(1000, 4.0),
    "classes": Need(1000, 4.0),
    "failures": Need(1000, 4.0),
    "fetch_model": Need(2000, 1.0, base_min=60),
    # Decoding (one process per thread, each one video's frames at a time); the frames
    # shard is streamed out a row group at a time.
    "frames": Need(4000, 1.0, base_min=60, min_per_input_gb=30),
    # Gathers stream row groups from shard to file.
    "gather_video_embeddings": Need(1000, 0.2),
    "gather_captions": Need(1000, 0.5),
    # Model stages on a CPU (on a GPU the profile sets their sizes): the model plus a batch.
    "embed_videos": Need(12000, 0.5, base_min=60, min_per_input_gb=60),
    "embed_class_names": Need(6000, 2.0, base_min=20),
    "embed_class_texts": Need(6000, 2.0, base_min=20),
    "embed_captions": Need(6000, 2.0, base_min=20, min_per_input_gb=30),
    "caption_shard": Need(24000, 1.0, base_min=120, min_per_input_gb=120),
    "descriptors": Need(24000, 1.0, base_min=120),
    # Downstream, fitted to benchmarks/downstream_scale.py's runs (see the module
    # docstring): MARGIN x the line covers every job's peak there. Score and explain read
    # their embeddings a block at a time: a small slope; compare and the pages read the
    # scores or explanations (about 200 bytes a video) and grow a few MB per MB of them.
    "score": Need(340, 0.25, base_min=5, min_per_input_gb=10),
    "explain": Need(240, 0.2, base_min=5, min_per_input_gb=30),
    "compare": Need(150, 3.0, base_min=5, min_per_input_gb=10),
    "tables": Need(100, 2.0, base_min=5),
    "report_tables_html": Need(100, 2.0, base_min=5),
    "report_runs": Need(100, 2.0, base_min=5),
    "report_ablation": Need(120, 2.0, base_min=5),
    "report_summary": Need(120, 2.0, base_min=5),
    "report_class_plots": Need(200, 5.0, base_min=5, min_per_input_gb=20),
    "report_explanations": Need(190, 2.0, base_min=5, min_per_input_gb=10,
                                inputs=("explanations",)),
    "report_class_gains": Need(120, 2.0, base_min=5),
}


def need(rule: str) -> Need:
    """The rule's entry, or an error naming the rule and this table."""
    try:
        return NEEDS[rule]
    except KeyError:
        raise KeyError(f"zsar.pipeline.resources.NEEDS has no entry for rule {rule!r}") from None
