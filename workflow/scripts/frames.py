"""Rule frames: decode one shard of a dataset's videos into sampled, resized JPEG frames."""

import logging
import os
import sys


def main(smk) -> None:
    log_file = open(smk.log[0], "w")  # stays open for the whole job
    # Point file descriptor 2 at the log too, so the decode workers and the C decoders
    # they run write there rather than to the terminal.
    os.dup2(log_file.fileno(), 2)
    sys.stderr = log_file
    logging.basicConfig(
        stream=sys.stderr, level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s"
    )
    from zsar.frames import run_frames_stage

    frames = smk.params.frames
    run_frames_stage(
        manifest_path=smk.input.manifest,
        out_path=smk.output.frames,
        failures_path=smk.output.failures,
        shard=smk.wildcards.shard,
        num_frames=int(frames["num_frames"]),
        short_side=int(frames["short_side"]),
        jpeg_quality=int(frames["jpeg_quality"]),
        workers=int(smk.threads),
    )


# Decode workers are spawned processes that re-import this file; only the parent may run.
if __name__ == "__main__":
    main(snakemake)
