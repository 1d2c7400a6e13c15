"""Rule classes: a dataset's annotation files -> classes.parquet, keyed on their content."""

from pathlib import Path

from zsar.pipeline.job import start_job


def main(smk) -> None:
    from zsar.pipeline.plan import dataset_from_config
    from zsar.stages.manifest import run_classes_stage

    # Where the files are now: the rule's cache key holds their content, not their paths.
    config_dir = Path(smk.scriptdir).parents[1] / "config"
    plan = dataset_from_config(smk.config, config_dir, smk.wildcards.dataset)
    run_classes_stage(plan, smk.output.classes, smk.params.key)


if __name__ == "__main__":
    start_job(snakemake)
    main(snakemake)
