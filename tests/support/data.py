"""Smaller copies of the shared MTEB data, for tests whose point is not the data's size."""

from __future__ import annotations

from pathlib import Path

import pyarrow.parquet as pq


def first_rows(source: Path, task: str, target: Path, *, rows: int) -> Path:
    """A data dir (`target`) holding `task`'s split files of `source` cut to their first `rows`
    rows, columns and schema as they are; `target` is what `--data-dir` / `data_dir=` takes."""
    folder = target / task
    folder.mkdir(parents=True)
    for split in sorted((source / task).glob("*.parquet")):
        table = pq.read_table(split)
        pq.write_table(table.slice(0, rows), folder / split.name)
    return target
