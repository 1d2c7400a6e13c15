# zsar: zero-shot video action recognition with image-text models.
# The DAG: manifest -> frames -> {captions, descriptors} -> embeddings -> scores -> metrics -> tables.
from snakemake.utils import min_version, validate

min_version("9.0")


configfile: "config/config.yaml"


validate(config, "config/schemas/config.schema.yaml")


include: "workflow/rules/common.smk"
include: "workflow/rules/models.smk"
include: "workflow/rules/manifest.smk"
include: "workflow/rules/frames.smk"
include: "workflow/rules/captions.smk"
include: "workflow/rules/descriptors.smk"
include: "workflow/rules/embed.smk"
include: "workflow/rules/score.smk"
include: "workflow/rules/report.smk"


rule all:
    input:
        final_outputs(),
    default_target: True
