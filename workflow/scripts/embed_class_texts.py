"""Rule embed_class_texts: one LLM's descriptor sentences of every class -> text embeddings."""

from zsar.pipeline.job import job_backbone, start_job


def main(smk) -> None:
    from zsar.stages.embed_text import run_class_descriptor_stage

    backbone, provenance = job_backbone(smk)
    provenance["templates"] = smk.params.templates
    run_class_descriptor_stage(
        smk.input.classes, smk.input.descriptors, smk.output[0], backbone,
        smk.params.templates, provenance,
    )


if __name__ == "__main__":
    start_job(snakemake)
    main(snakemake)
