"""Rule demo_data: generate the built-in demo dataset (videos, annotations, labels)."""

import logging
import sys
from pathlib import Path


def main(smk) -> None:
    sys.stderr = open(smk.log[0], "w")  # stays open for the whole job
    logging.basicConfig(stream=sys.stderr, level=logging.INFO, format="%(asctime)s %(message)s")
    from zsar.demo import generate_demo

    out_dir = Path(smk.output.annotations).parent
    expected = {Path(smk.output.labels).parent, Path(smk.output.videos).parent}
    if expected != {out_dir}:
        raise ValueError(f"demo outputs must share one folder, got {sorted(map(str, expected))}")
    clips = int(smk.params.get("clips_per_class", 4))
    seed = int(smk.params.get("seed", 0))
    generate_demo(out_dir, clips_per_class=clips, seed=seed)
    logging.info("demo dataset: %d clips per class, seed %d, in %s", clips, seed, out_dir)


if __name__ == "__main__":
    main(snakemake)
