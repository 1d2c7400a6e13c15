"""Rule failures: missing videos from the manifest + every stage's failures -> one table."""

from zsar.pipeline.job import start_job


def main(smk) -> None:
    from zsar.stages.manifest import run_failures_stage

    run_failures_stage(
        smk.input.manifest,
        list(smk.input.frames) + list(smk.input.captions),
        out=smk.output[0],
    )


if __name__ == "__main__":
    start_job(snakemake)
    main(snakemake)
