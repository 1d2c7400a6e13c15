"""Rule embed_captions: captions -> text embeddings with the backbone's text encoder."""

from zsar.job import start_job


def main(smk) -> None:
    from zsar.backbones import load_backbone
    from zsar.devices import preferred_device
    from zsar.embed import run_caption_text_stage
    from zsar.provenance import provenance

    entry = smk.params.backbone
    run_caption_text_stage(
        smk.input.captions,
        smk.output[0],
        load_backbone(entry, smk.config["resources"], preferred_device()),
        provenance({"backbone": entry}, model=entry["name"]),
    )


if __name__ == "__main__":
    start_job(snakemake)
    main(snakemake)
