"""Rule embed_class_texts: class names and descriptor sentences -> text embeddings."""

from zsar.job import start_job


def main(smk) -> None:
    from zsar.backbones import load_backbone
    from zsar.devices import preferred_device
    from zsar.embed import run_class_text_stage
    from zsar.provenance import provenance

    entry = smk.params.backbone
    run_class_text_stage(
        smk.input.classes,
        smk.input.descriptors,
        smk.output[0],
        load_backbone(entry, smk.config["resources"], preferred_device()),
        smk.params.templates,
        provenance({"backbone": entry, "templates": smk.params.templates}, model=entry["name"]),
    )


if __name__ == "__main__":
    start_job(snakemake)
    main(snakemake)
