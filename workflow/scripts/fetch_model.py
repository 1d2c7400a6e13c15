"""Rule fetch_model: download (or, for tiny models, build) one model into resources/models/."""

from pathlib import Path

from zsar.models.fetch import FetchError
from zsar.pipeline.job import model_entry, one_line_failure, start_job


def main(smk) -> None:
    from zsar.models.fetch import fetch_model

    section = smk.params.section
    entry = model_entry(smk, section, smk.wildcards.model)
    ready = fetch_model(entry, smk.config["resources"], section)
    if Path(ready) != Path(smk.output.ready):
        raise RuntimeError(f"fetch_model wrote {ready}, but the rule expects {smk.output.ready}")


if __name__ == "__main__":
    # The one job that downloads: it runs where there is internet (a login node).
    start_job(snakemake, hub_offline=False)
    with one_line_failure(snakemake, FetchError):
        main(snakemake)
