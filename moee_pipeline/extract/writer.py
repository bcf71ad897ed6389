"""Buffered Parquet part writing in a background thread, so the GPU never waits for disk."""

from __future__ import annotations

import re
from collections.abc import Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pyarrow as pa

from moee_pipeline.cache import parts
from moee_pipeline.extract.hooks import PooledBatch
from moee_pipeline.extract.settings import ExtractionError


class PartWriter:
    """Buffers pooled rows and writes parts of exactly `rows` rows (the last may be shorter).

    Parts are written by one background thread while the model computes the next batches;
    errors from that thread surface on the next call. Numbers continue after the parts in the
    folder, and start at `first` at the least (a staged shard: after the parts it replaces).
    """

    def __init__(
        self, directory: Path, schema: pa.Schema, *, prefix: str, rows: int, first: int = 0
    ) -> None:
        self.directory = directory
        self.schema = schema
        self.store_dtype = parts.store_dtype(parts.schema_metadata(schema))
        self.prefix = prefix
        self.rows_per_part = rows
        pattern = re.compile(rf"^{re.escape(prefix)}-(\d+)\.parquet$")
        numbers = [int(m.group(1)) for p in directory.iterdir() if (m := pattern.match(p.name))]
        self._next = max(max(numbers, default=-1) + 1, first)
        self._buffer: list[pa.RecordBatch] = []
        self._buffered = 0
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="moee-writer")
        self._pending: list[Future[dict[str, Any]]] = []
        self.written = 0
        #: Manifest records (rows, bytes, sha256) of the parts this writer wrote, by file name.
        self.records: dict[str, dict[str, Any]] = {}

    def add(
        self,
        texts: Sequence[str],
        tokens: Sequence[int],
        truncated: Sequence[bool],
        pooled: PooledBatch,
    ) -> None:
        """Buffer one batch of rows; full parts go to the writer thread.

        Raises:
            ExtractionError: a feature beyond the store dtype's range, naming column and text
                (float16 tops out at 65504: never stored as inf).
        """
        arrays = pooled.arrays()
        names = [n for n in self.schema.names if n in parts.ALL_VECTOR_COLUMNS]
        if set(arrays) != set(names):  # the model's hooks and the entry's columns disagree
            raise ValueError(f"a batch holds {sorted(arrays)}, the parts {sorted(names)}")
        for name in names:
            matrix = arrays[name]
            bad = parts.overflow_rows(matrix, self.store_dtype)
            if bad.any():
                example = texts[int(bad.argmax())][:60]
                limit = f"{parts.DTYPE_MAX[self.store_dtype]:.6g}"
                raise ExtractionError(
                    f"{name} of {int(bad.sum())} text(s), e.g. {example!r}, is beyond "
                    f"{self.store_dtype}'s range (+-{limit}): use --store-dtype bfloat16 or "
                    "float32 (with --overwrite)"
                )
        columns = [
            pa.array([parts.text_id(t) for t in texts], pa.string()),
            pa.array(list(texts), pa.string()),
            pa.array(list(tokens), pa.int32()),
            pa.array(list(truncated), pa.bool_()),
        ]
        columns += [parts.vector_array(arrays[name], self.store_dtype) for name in names]
        self._buffer.append(pa.record_batch(columns, schema=self.schema))
        self._buffered += len(texts)
        if self._buffered >= self.rows_per_part:
            self._flush(final=False)

    def _flush(self, *, final: bool) -> None:
        if not self._buffered:
            return
        table = pa.Table.from_batches(self._buffer, schema=self.schema)
        start = 0
        while table.num_rows - start >= self.rows_per_part or (final and start < table.num_rows):
            self._submit(table.slice(start, self.rows_per_part))
            start += self.rows_per_part
        rest = table.slice(start)
        self._buffer = rest.to_batches() if rest.num_rows else []
        self._buffered = rest.num_rows
        self._raise_errors(block=False)

    def _submit(self, table: pa.Table) -> None:
        path = self.directory / f"{self.prefix}-{self._next:05d}.parquet"
        self._next += 1
        self._pending.append(self._pool.submit(_write_named, table, path))
        self.written += table.num_rows

    def _raise_errors(self, *, block: bool) -> None:
        still = []
        for future in self._pending:
            if block or future.done():
                record = future.result()
                self.records[record.pop("name")] = record
            else:
                still.append(future)
        self._pending = still

    def close(self) -> None:
        """Write what is buffered and wait until every part is on disk."""
        try:
            self._flush(final=True)
            self._raise_errors(block=True)
        finally:
            self._pool.shutdown(wait=True)


def _write_named(table: pa.Table, path: Path) -> dict[str, Any]:
    """Write a part; its record carries the file name back to the writer's thread."""
    return {"name": path.name, **parts.write_part(table, path)}
