"""Rule manifest: a dataset's annotation files and videos -> manifest.parquet and the list of
video files the frames stage is keyed on."""

from zsar.pipeline.job import start_job


def main(smk) -> None:
    from zsar.stages.manifest import run_manifest_stage

    run_manifest_stage(smk.params.spec, smk.output.manifest, smk.output.video_files)


if __name__ == "__main__":
    start_job(snakemake)
    main(snakemake)
