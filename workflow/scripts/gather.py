"""Rules gather_captions and gather_video_embeddings: per-shard Parquet files -> one file."""

import logging

from zsar.job import start_job


def main(smk) -> None:
    from zsar.io import gather_parquet

    rows = gather_parquet(list(smk.input), smk.output[0])
    logging.info("gathered %d rows from %d shards into %s", rows, len(smk.input), smk.output[0])


if __name__ == "__main__":
    start_job(snakemake)
    main(snakemake)
