"""The I/O edge shared by every stage: atomic writes and the Parquet/JSON contracts.

Every artifact is written to a temporary file beside its target and renamed into
place, so a crash (even SIGKILL) never leaves a half-written output that a re-run
would mistake for a finished one.
"""

from __future__ import annotations

import contextlib
import glob
import hashlib
import json
import os
import tempfile
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

# Key under which zsar stores its provenance block in Parquet key-value metadata.
PROVENANCE_KEY = b"zsar"

FAILURE_SCHEMA = pa.schema(
    [("video_id", pa.string()), ("stage", pa.string()), ("reason", pa.string())]
)


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path next to `path`; rename it onto `path` only on success."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    # A writer killed with SIGKILL cannot remove its temporary; the next write clears it.
    for stale in target.parent.glob(f".{glob.escape(target.name)}.*.tmp"):
        stale.unlink(missing_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    # mkstemp creates 0600 files; outputs are ordinary shared files.
    os.chmod(tmp_path, 0o644)
    try:
        yield tmp_path
        os.replace(tmp_path, target)
    finally:
        if tmp_path.exists():
            tmp_path.unlink()


def _with_provenance(schema: pa.Schema, provenance: Mapping[str, Any] | None) -> pa.Schema:
    if not provenance:
        return schema
    metadata = dict(schema.metadata or {})
    metadata[PROVENANCE_KEY] = json.dumps(provenance, sort_keys=True).encode()
    return schema.with_metadata(metadata)


def write_parquet(
    table: pa.Table, path: str | os.PathLike, provenance: Mapping[str, Any] | None = None
) -> None:
    """Write `table` atomically, with zsar's provenance in the key-value metadata."""
    table = table.replace_schema_metadata(_with_provenance(table.schema, provenance).metadata)
    with atomic_path(path) as tmp:
        pq.write_table(table, tmp)


class ParquetStreamWriter:
    """Stream record batches into one Parquet file that appears only when complete.

    Stages use this so that memory stays flat however large the dataset is: each
    batch is flushed to disk as a row group and dropped.
    """

    def __init__(
        self,
        path: str | os.PathLike,
        schema: pa.Schema,
        provenance: Mapping[str, Any] | None = None,
    ):
        self._ctx = atomic_path(path)
        self._tmp = self._ctx.__enter__()
        self.schema = _with_provenance(schema, provenance)
        self._writer = pq.ParquetWriter(self._tmp, self.schema)
        self.rows = 0

    def write_rows(self, rows: list[dict[str, Any]]) -> None:
        if rows:
            self.write_table(pa.Table.from_pylist(rows, schema=self.schema))

    def write_table(self, table: pa.Table) -> None:
        self._writer.write_table(table.cast(self.schema))
        self.rows += table.num_rows

    def close(self) -> None:
        self._writer.close()
        self._ctx.__exit__(None, None, None)

    def abort(self, exc: BaseException) -> None:
        self._writer.close()
        self._ctx.__exit__(type(exc), exc, exc.__traceback__)

    def __enter__(self) -> ParquetStreamWriter:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc is None:
            self.close()
        else:
            self.abort(exc)


def read_provenance(path: str | os.PathLike) -> dict[str, Any]:
    metadata = pq.read_schema(path).metadata or {}
    raw = metadata.get(PROVENANCE_KEY)
    return json.loads(raw) if raw else {}


def write_json(obj: Any, path: str | os.PathLike) -> None:
    """Write JSON atomically, with sorted keys so that equal content gives equal bytes.

    NaN and infinities are refused (allow_nan=False): they are not JSON, and a strict
    reader rejects the file; an undefined number is written as null instead.
    """
    text = json.dumps(obj, indent=2, sort_keys=True, ensure_ascii=False, allow_nan=False)
    with atomic_path(path) as tmp:
        tmp.write_text(text + "\n")


def read_json(path: str | os.PathLike) -> Any:
    return json.loads(Path(path).read_text())


def write_text(text: str, path: str | os.PathLike) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text)


def vector_matrix(table: pa.Table, column: str = "vector"):
    """A list<float> column as one [N, D] float32 numpy array.

    No Python float per value: for a large benchmark's embeddings that would cost about
    30 bytes per value instead of 4, i.e. gigabytes.
    """
    if table.num_rows == 0:
        return np.zeros((0, 0), dtype=np.float32)
    flat = table.column(column).combine_chunks().flatten().to_numpy(zero_copy_only=False)
    return np.asarray(flat, dtype=np.float32).reshape(table.num_rows, -1)


def vectors_by_key(table: pa.Table, key: str) -> dict[str, Any]:
    """key -> its row of `vector_matrix(table)` (rows are views, not copies)."""
    return dict(zip(table.column(key).to_pylist(), vector_matrix(table), strict=True))


def _objects(values: list[Any]) -> np.ndarray:
    """A 1-d object array of Python values (np.asarray would nest a list of lists)."""
    out = np.empty(len(values), dtype=object)
    out[:] = values
    return out


class RowGroups:
    """A Parquet file's rows read by index, a row group at a time: a job that walks a large
    file in blocks holds one block's row groups, not the file."""

    def __init__(self, path: str | os.PathLike):
        self.path = str(path)
        self._file = pq.ParquetFile(path)
        sizes = [self._file.metadata.row_group(g).num_rows
                 for g in range(self._file.num_row_groups)]  # fmt: skip
        self._starts = np.concatenate([[0], np.cumsum(sizes, dtype=np.int64)])
        self._cached: tuple[tuple[int, str | None], Any] | None = None

    def _group(self, group: int, column: str | None):
        if self._cached is None or self._cached[0] != (group, column):
            columns = None if column is None else [column]
            self._cached = ((group, column), self._file.read_row_group(group, columns=columns))
        return self._cached[1]

    def _gather(self, rows, column: str | None, convert):
        """convert(row group's table) -> array, its rows `rows` (file row indices): the parts
        read and where each part's rows go."""
        rows = np.asarray(rows, dtype=np.int64)
        groups = np.searchsorted(self._starts, rows, side="right") - 1
        parts, where = [], []
        for group in np.unique(groups):
            mine = np.flatnonzero(groups == group)
            parts.append(convert(self._group(int(group), column))[rows[mine] - self._starts[group]])
            where.append(mine)
        return parts, (np.concatenate(where) if where else np.zeros(0, np.int64))

    def records(self, rows) -> list[dict[str, Any]]:
        """The rows at these file row indices, in the order given, as dicts."""
        parts, where = self._gather(rows, None, lambda t: _objects(t.to_pylist()))
        out = np.empty(len(where), dtype=object)
        if parts:
            out[where] = np.concatenate(parts)
        return out.tolist()


class KeyedRows(RowGroups):
    """A Parquet file's rows looked up by a key column, read a row group at a time.

    Only the key column is held whole; `vectors` and `column` read the row groups that
    hold the rows asked for (the gathered embeddings keep their shards' order, so a block
    of videos in order touches few row groups; any order is still right, only slower).
    """

    def __init__(self, path: str | os.PathLike, key: str):
        super().__init__(path)
        self.keys = self._file.read(columns=[key]).column(key).combine_chunks()

    def rows(self, keys: pa.Array) -> Any:
        """The row index of each key, -1 where the file has none (first row of a repeated key)."""
        if len(self.keys) == 0:  # an empty file's key column may be typed null
            return np.full(len(keys), -1, dtype=np.int64)
        found = pc.index_in(keys, value_set=self.keys)
        return found.fill_null(-1).to_numpy(zero_copy_only=False).astype("int64")

    def vectors(self, rows, column: str = "vector"):
        """[len(rows), D] float32: the list<float> column's value at each row index."""
        parts, where = self._gather(rows, column, lambda t: vector_matrix(t, column))
        if not parts:
            return np.zeros((0, 0), dtype=np.float32)
        found = np.concatenate(parts)
        if np.array_equal(where, np.arange(len(where))):  # rows in file order: no scatter
            return found
        out = np.empty_like(found)
        out[where] = found
        return out

    def column(self, rows, column: str) -> list[Any]:
        """The column's value at each row index, as Python values."""
        parts, where = self._gather(
            rows, column, lambda t: _objects(t.column(column).to_pylist())
        )
        out = np.empty(len(where), dtype=object)
        if parts:
            out[where] = np.concatenate(parts)
        return out.tolist()


# Files up to this size are hashed by content; larger ones (videos under a folder adapter's
# root) by name and size, so a digest never reads gigabytes.
DIGEST_CONTENT_BYTES = 1 << 20


def _file_digest(path: Path) -> str:
    size = path.stat().st_size
    if size > DIGEST_CONTENT_BYTES:
        return f"size:{size}"
    return hashlib.sha256(path.read_bytes()).hexdigest()


def content_digest(path: str | os.PathLike) -> str:
    """A sha256 of what a file, or a folder of files, holds, whatever its path.

    A folder's digest covers each file's path relative to it and its own digest (by content
    up to DIGEST_CONTENT_BYTES, by size beyond), in sorted order.
    """
    root = Path(path)
    if root.is_file():
        return _file_digest(root)
    digest = hashlib.sha256()
    for file in sorted(p for p in root.rglob("*") if p.is_file()):
        digest.update(f"{file.relative_to(root).as_posix()}\0{_file_digest(file)}\0".encode())
    return digest.hexdigest()


def rows_digest(path: str | os.PathLike) -> str:
    """A sha256 of a small Parquet file's columns and rows, not of its bytes: the provenance
    in its metadata (the git commit, the lists' paths) changes no digest, so a job keyed by
    it re-runs only when the rows do."""
    table = pq.read_table(path)
    text = json.dumps([table.column_names, table.to_pylist()], sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()


def concat_tables(tables: list[pa.Table]) -> pa.Table:
    """Tables concatenated in order; a column one table lacks (class names carry
    `template`, descriptor texts do not) is null in its rows."""
    tables = [t.replace_schema_metadata(None) for t in tables]
    return pa.concat_tables(tables, promote_options="default")


def read_tables(paths: list[str | os.PathLike | None]) -> pa.Table:
    """Tables read and concatenated in order (None entries skipped)."""
    return concat_tables([pq.read_table(p) for p in paths if p is not None])


def failures_table(records: list[dict[str, str]]) -> pa.Table:
    """Failures as the `failures.parquet` contract: video_id, stage, reason."""
    return pa.Table.from_pylist(records, schema=FAILURE_SCHEMA)


def concat_parquet(paths: list[str | os.PathLike], schema: pa.Schema | None = None) -> pa.Table:
    """Concatenate shard files in the given order (the order is part of determinism)."""
    tables = [pq.read_table(p) for p in paths]
    if not tables:
        if schema is None:
            raise ValueError("no shards to concatenate and no schema given")
        return schema.empty_table()
    return pa.concat_tables([t.replace_schema_metadata(None) for t in tables])


def gather_parquet(inputs: list[str | os.PathLike], output: str | os.PathLike) -> int:
    """Stream every shard's row groups into `output`, in input order, with the first shard's
    provenance; memory stays one row group. Returns the row count."""
    paths = [str(p) for p in inputs]
    if not paths:
        raise ValueError(f"nothing to gather into {output}")
    schema = pq.read_schema(paths[0]).remove_metadata()
    first = read_provenance(paths[0])
    for path in paths[1:]:
        # Shards made under different protocols would pass as one (zsar.core.protocol).
        if read_provenance(path).get("protocol") != first.get("protocol"):
            raise ValueError(f"{path}: made under another protocol than {paths[0]}; "
                             "make every shard again with one config")
    with ParquetStreamWriter(output, schema, first) as writer:
        for path in paths:
            shard = pq.ParquetFile(path)
            for group in range(shard.num_row_groups):
                writer.write_table(shard.read_row_group(group))
        return writer.rows
