"""Rule embed_captions: captions -> text embeddings with the backbone's text encoder."""

from zsar.pipeline.job import job_backbone, start_job


def main(smk) -> None:
    from zsar.stages.embed_text import run_caption_text_stage

    backbone, provenance = job_backbone(smk)
    run_caption_text_stage(smk.input.captions, smk.output[0], backbone, provenance)


if __name__ == "__main__":
    start_job(snakemake)
    main(snakemake)
