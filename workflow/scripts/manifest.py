"""Rules manifest and classes: a dataset's annotation files -> manifest.parquet or
classes.parquet (whichever output the rule names)."""

from zsar.job import start_job


def main(smk) -> None:
    from zsar.manifest import run_manifest_stage

    run_manifest_stage(
        smk.params.spec,
        manifest_out=smk.output.get("manifest"),
        classes_out=smk.output.get("classes"),
    )


if __name__ == "__main__":
    start_job(snakemake)
    main(snakemake)
