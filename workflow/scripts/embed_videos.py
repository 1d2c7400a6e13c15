"""Rule embed_videos: one frames shard -> video embeddings with one backbone."""

from zsar.pipeline.job import job_backbone, start_job


def main(smk) -> None:
    from zsar.stages.embed import Views, run_video_embedding_stage

    backbone, provenance = job_backbone(smk)
    run_video_embedding_stage(
        smk.input.frames, smk.output[0], backbone, workers=smk.threads, provenance=provenance,
        views=Views(**smk.params.views), pooling=smk.params.pooling,
    )


# Data loader workers may be spawned processes that re-import this file: only the parent runs.
if __name__ == "__main__":
    start_job(snakemake)
    main(snakemake)
