"""Rule embed_videos: one frames shard -> video embeddings with one backbone."""

from zsar.job import start_job


def main(smk) -> None:
    from zsar.backbones import load_backbone
    from zsar.devices import preferred_device
    from zsar.embed import run_video_embedding_stage
    from zsar.provenance import provenance

    entry = smk.params.backbone
    run_video_embedding_stage(
        smk.input.frames,
        smk.output[0],
        load_backbone(entry, smk.config["resources"], preferred_device()),
        workers=smk.threads,
        provenance=provenance({"backbone": entry}, model=entry["name"]),
    )


# Data loader workers may be spawned processes that re-import this file: only the parent runs.
if __name__ == "__main__":
    start_job(snakemake)
    main(snakemake)
