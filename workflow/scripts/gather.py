"""Rules gather_captions and gather_video_embeddings: per-shard Parquet files -> one file."""

import logging

from zsar.pipeline.job import start_job


def main(smk) -> None:
    from zsar.data.io import gather_parquet

    shards = list(smk.input.shards)
    rows = gather_parquet(shards, smk.output[0])
    logging.info("gathered %d rows from %d shards into %s", rows, len(shards), smk.output[0])


if __name__ == "__main__":
    start_job(snakemake)
    main(snakemake)
