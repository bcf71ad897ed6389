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


def retrieval_subset(source: Path, task: str, target: Path, *, others: int, seed: int = 0) -> Path:
    """A data dir (`target`) holding `task`'s retrieval split files of `source` with its corpus
    cut to every document some qrels row names plus `others` documents drawn with a fixed seed
    (corpus order kept); queries and qrels as they are. Same schema as the source."""
    import numpy as np
    import pyarrow.compute as pc

    for part in ("queries", "qrels"):
        (target / task / part).mkdir(parents=True)
    (target / task / "corpus").mkdir()
    for split in sorted((source / task / "qrels").glob("*.parquet")):
        qrels = pq.read_table(split)
        corpus = pq.read_table(source / task / "corpus" / split.name)
        relevant = pc.is_in(corpus.column("id"), value_set=qrels.column("corpus-id"))
        rest = np.flatnonzero(~np.asarray(relevant))
        drawn = np.random.default_rng(seed).choice(rest, size=min(others, len(rest)), replace=False)
        keep = np.asarray(relevant).copy()
        keep[drawn] = True
        pq.write_table(corpus.filter(keep), target / task / "corpus" / split.name)
        pq.write_table(qrels, target / task / "qrels" / split.name)
        queries = pq.read_table(source / task / "queries" / split.name)
        pq.write_table(queries, target / task / "queries" / split.name)
    return target
