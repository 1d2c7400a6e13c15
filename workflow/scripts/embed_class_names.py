"""Rule embed_class_names: the name prompt of every class -> text embeddings."""

from zsar.job import job_backbone, start_job


def main(smk) -> None:
    from zsar.embed_text import run_class_name_stage

    backbone, provenance = job_backbone(smk)
    run_class_name_stage(smk.input.classes, smk.output[0], backbone, provenance)


if __name__ == "__main__":
    start_job(snakemake)
    main(snakemake)
