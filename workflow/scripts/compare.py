"""Rule compare: a backbone's scores of every run -> paired comparisons, per-class gains."""

import logging

from zsar.pipeline.job import start_job


def main(smk) -> None:
    from zsar.stages.compare import run_compare_stage

    record = run_compare_stage(
        list(smk.input.scores),
        smk.input.classes,
        smk.output.comparisons,
        smk.output.class_gains,
        dataset=smk.wildcards.dataset,
        backbone=smk.wildcards.backbone,
        runs=smk.params.runs,
        failure_policy=smk.params.failure_policy,
        statistics=smk.params.statistics,
    )
    significant = [f"{r['b']} vs {r['a']}" for r in record["top1"] if r["significant"]]
    logging.info("%d comparisons on %d videos; significant (top-1): %s",
                 len(record["pairs"]), record["videos"], ", ".join(significant) or "none")


if __name__ == "__main__":
    start_job(snakemake)
    main(snakemake)
