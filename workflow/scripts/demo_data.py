"""Rule demo_data: generate the built-in demo dataset (videos, annotations, labels)."""

import logging
from pathlib import Path

from zsar.pipeline.job import start_job


def main(smk) -> None:
    from zsar.data.demo import generate_demo

    out_dir = Path(smk.output.annotations).parent
    expected = {Path(smk.output.labels).parent, Path(smk.output.videos).parent}
    if expected != {out_dir}:
        raise ValueError(f"demo outputs must share one folder, got {sorted(map(str, expected))}")
    clips = int(smk.params.clips_per_class)
    seed = int(smk.params.seed)
    generate_demo(out_dir, clips_per_class=clips, seed=seed)
    logging.info("demo dataset: %d clips per class, seed %d, in %s", clips, seed, out_dir)


if __name__ == "__main__":
    start_job(snakemake)
    main(snakemake)
