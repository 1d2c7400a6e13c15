"""Rule embed_class_names: the name prompt of every class -> text embeddings."""

from zsar.pipeline.job import job_backbone, start_job


def main(smk) -> None:
    from zsar.stages.embed_text import NamePrompt, run_class_name_stage

    backbone, provenance = job_backbone(smk)
    prompt = smk.params.prompt
    provenance["name_prompt"] = prompt
    run_class_name_stage(
        smk.input.classes, smk.output[0], backbone,
        NamePrompt(prompt["version"], tuple(prompt["templates"]), prompt["combine"],
                   prompt["scale"]),
        provenance,
        class_names=smk.params.class_names,
    )


if __name__ == "__main__":
    start_job(snakemake)
    main(snakemake)
