"""Gather per-shard Parquet files into one: rows in input (shard) order, written atomically,
with the first shard's provenance. Used by gather_captions and gather_video_embeddings."""

import logging

import pyarrow.parquet as pq

from zsar.io import ParquetStreamWriter, read_provenance


def gather_parquet(inputs, output) -> int:
    """Stream every shard's row groups into `output` (memory stays flat); the row count."""
    paths = [str(p) for p in inputs]
    if not paths:
        raise ValueError(f"nothing to gather into {output}")
    schema = pq.read_schema(paths[0]).remove_metadata()
    with ParquetStreamWriter(output, schema, read_provenance(paths[0])) as writer:
        for path in paths:
            shard = pq.ParquetFile(path)
            for group in range(shard.num_row_groups):
                writer.write_table(shard.read_row_group(group))
        rows = writer.rows
    logging.info("gathered %d rows from %d shards into %s", rows, len(paths), output)
    return rows


if "snakemake" in globals():
    import sys

    sys.stderr = open(snakemake.log[0], "w")
    logging.basicConfig(level=logging.INFO, stream=sys.stderr)
    gather_parquet(snakemake.input, snakemake.output[0])
