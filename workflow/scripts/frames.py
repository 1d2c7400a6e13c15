"""Rule frames: decode one shard of a dataset's videos into sampled, resized JPEG frames."""

from zsar.job import start_job


def main(smk) -> None:
    from zsar.frames import run_frames_stage

    frames = smk.params.frames
    run_frames_stage(
        manifest_path=smk.input.manifest,
        out_path=smk.output.frames,
        failures_path=smk.output.failures,
        shard=smk.wildcards.shard,
        # Each temporal clip is num_frames TSN frames of one equal part: together, the TSN
        # frames of clips x num_frames segments (zsar.embed.Views).
        num_frames=int(frames["num_frames"]) * int(frames["clips"]),
        short_side=int(frames["short_side"]),
        jpeg_quality=int(frames["jpeg_quality"]),
        workers=int(smk.threads),
    )


# Decode workers are spawned processes that re-import this file; only the parent may run.
if __name__ == "__main__":
    start_job(snakemake)
    main(snakemake)
