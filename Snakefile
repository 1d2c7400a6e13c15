# zsar: zero-shot video action recognition with image-text models.
# The DAG: manifest -> frames -> {captions, descriptors} -> embeddings -> scores -> metrics
# (and comparisons) -> tables.
from snakemake.utils import min_version

min_version("9.0")


configfile: "config/config.yaml"


# common.smk fills in the schema's defaults and checks every key (zsar.pipeline.config), then plans
# the run (zsar.pipeline.plan): a bad config stops there, before any job, naming the key at fault.
include: "workflow/rules/common.smk"


# Each wildcard's pattern comes from the name format that writes it (zsar.pipeline.plan), or is
# one of the names the config plans.
wildcard_constraints:
    **wildcard_patterns(PLAN, RUNS),


include: "workflow/rules/models.smk"
include: "workflow/rules/manifest.smk"
include: "workflow/rules/frames.smk"
include: "workflow/rules/captions.smk"
include: "workflow/rules/descriptors.smk"
include: "workflow/rules/embed.smk"
include: "workflow/rules/score.smk"
include: "workflow/rules/compare.smk"
include: "workflow/rules/report.smk"


# Said again at the end, where a reader of a long run's log looks first, after one line
# per dataset of what was evaluated, failed and missing.
onsuccess:
    print_run_summary()
    if PREFLIGHT is not None and PREFLIGHT.warnings:
        print(
            "\n".join(f"WARNING: {w}" for w in PREFLIGHT.warnings), file=sys.stderr
        )


onerror:
    if PREFLIGHT is not None and PREFLIGHT.warnings:
        print(
            "\n".join(f"WARNING: {w}" for w in PREFLIGHT.warnings), file=sys.stderr
        )


rule all:
    default_target: True
    input:
        WIRING.final_targets(),
