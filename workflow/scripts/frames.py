"""Rule frames: decode one shard of a dataset's videos into sampled, resized JPEG frames."""

from zsar.pipeline.job import start_job


def main(smk) -> None:
    from zsar.stages.frames import run_frames_stage, sampling_of

    frames = smk.params.frames
    run_frames_stage(
        manifest_path=smk.input.manifest,
        out_path=smk.output.frames,
        failures_path=smk.output.failures,
        shard=smk.wildcards.shard,
        # `clips` clips of num_frames frames each, clip after clip (zsar.stages.embed.Views).
        sampling=sampling_of(frames),
        short_side=int(frames["short_side"]),
        jpeg_quality=int(frames["jpeg_quality"]),
        workers=int(smk.threads),
    )


# Decode workers are spawned processes that re-import this file; only the parent may run.
if __name__ == "__main__":
    start_job(snakemake)
    main(snakemake)
