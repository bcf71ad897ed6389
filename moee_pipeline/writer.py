"""Buffered Parquet part writing in a background thread, so the GPU never waits for disk."""

from __future__ import annotations

from collections.abc import Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

import pyarrow as pa

from moee_pipeline import store
from moee_pipeline.features import PooledBatch


class PartWriter:
    """Buffers pooled rows and writes full parts in a background thread."""

    def __init__(self, directory: Path, schema: pa.Schema, *, prefix: str, rows: int) -> None:
        self.directory, self.schema, self.prefix, self.rows_per_part = (
            directory,
            schema,
            prefix,
            rows,
        )
        existing = [
            int(p.stem.rsplit("-", 1)[-1]) for p in directory.glob(f"{prefix}-[0-9]*.parquet")
        ]
        self._next = max(existing, default=-1) + 1
        self._buffer: list[pa.RecordBatch] = []
        self._buffered = 0
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="moee-writer")
        self._pending: list[Future[None]] = []
        self.written = 0

    def add(
        self,
        texts: Sequence[str],
        tokens: Sequence[int],
        truncated: Sequence[bool],
        pooled: PooledBatch,
    ) -> None:
        columns = {
            "text_id": pa.array([store.text_id(t) for t in texts], pa.string()),
            "text": pa.array(list(texts), pa.string()),
            "n_tokens": pa.array(list(tokens), pa.int32()),
            "truncated": pa.array(list(truncated), pa.bool_()),
        }
        for name in store.VECTOR_COLUMNS:
            columns[name] = store.vector_array(getattr(pooled, name))
        self._buffer.append(pa.record_batch(list(columns.values()), schema=self.schema))
        self._buffered += len(texts)
        if self._buffered >= self.rows_per_part:
            self.flush()

    def flush(self) -> None:
        if not self._buffer:
            return
        table = pa.Table.from_batches(self._buffer, schema=self.schema)
        path = self.directory / f"{self.prefix}-{self._next:05d}.parquet"
        self._next += 1
        self._buffer, self._buffered = [], 0
        self._pending.append(self._pool.submit(store.write_part, table, path))
        self.written += table.num_rows
        self._raise_errors(block=False)

    def _raise_errors(self, *, block: bool) -> None:
        still = []
        for future in self._pending:
            if block or future.done():
                future.result()
            else:
                still.append(future)
        self._pending = still

    def close(self) -> None:
        """Write what is buffered and wait for every part to be on disk."""
        self.flush()
        try:
            self._raise_errors(block=True)
        finally:
            self._pool.shutdown(wait=True)
