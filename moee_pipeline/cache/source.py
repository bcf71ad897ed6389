"""An entry's features read in chunks: the Parquet row groups of its parts, memory-mapped.

Scoring a corpus of hundreds of thousands of documents cannot hold every feature matrix of the
entry at once (500k rows at OLMoE's widths are 6 GB per pooling), so scoring reads through a
`FeatureSource`: the entry is checked as a whole when it is opened (the manifest against the
folder, every part's size, SHA-256 read in small pieces, footer rows, columns and widths: the
checks of `store.read_features`, in its words), then any set of rows is read by decoding only
the row groups that hold them, one at a time (`parts.ROW_GROUP_ROWS` rows each), from a memory
map opened for that read and closed after it, so neither the decoded rows nor the mapped pages
of a part outlive the read. What a source keeps for the whole entry is one text id per row.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from moee_pipeline.cache.errors import FileProblem
from moee_pipeline.cache.parts import ALL_VECTOR_COLUMNS, check_part, column_matrix
from moee_pipeline.cache.store import checked_entry, rows_problem
from moee_pipeline.errors import first_line

__all__ = ["FeatureSource", "LoadedFeatures", "RowReader", "open_source"]

#: Called with the number of rows each row-group read decodes (tests bound it).
ReadObserver = Callable[[int], None]


class RowReader(Protocol):
    """What scoring reads features through: an entry on disk, or one held in memory."""

    @property
    def text_ids(self) -> list[str]:
        """Every row's text id, in row order."""
        ...

    @property
    def manifest(self) -> dict[str, Any]:
        """The entry's manifest."""
        ...

    @property
    def rows(self) -> int:
        """How many rows the entry has (row numbers follow `text_ids`)."""
        ...

    def read(self, rows: np.ndarray, columns: Sequence[str]) -> dict[str, np.ndarray]:
        """Each column's float32 matrix at `rows`, in their order."""
        ...

    def chunks(
        self, columns: Sequence[str], chunk_rows: int
    ) -> Iterator[tuple[int, dict[str, np.ndarray]]]:
        """Consecutive blocks of at most `chunk_rows` rows: (first row, matrices)."""
        ...


@dataclass(frozen=True)
class _Group:
    """One row group of one part, and where its rows start among the entry's rows."""

    path: Path
    metadata: pq.FileMetaData
    index: int
    start: int
    rows: int


class FeatureSource:
    """The rows of one checked entry, read on demand; row numbers follow `text_ids`.

    Args:
        text_ids: every row's text id, in the entry's order (parts by name, rows within).
        groups: the row groups covering those rows, in the same order.
        manifest: the entry's manifest (layers, provenance).
        observer: told the size of every row-group read (for tests and benchmarks).
    """

    def __init__(
        self,
        text_ids: list[str],
        groups: Sequence[_Group],
        manifest: dict[str, Any],
        *,
        observer: ReadObserver | None = None,
    ) -> None:
        self.text_ids = text_ids
        self.manifest = manifest
        self._groups = list(groups)
        self._starts = np.array([g.start for g in self._groups], dtype=np.int64)
        self._observer = observer
        #: Each vector column's width, as the parts store it (checked against the manifest).
        schema = self._groups[0].metadata.schema.to_arrow_schema() if self._groups else None
        self.widths = {
            name: schema.field(name).type.list_size
            for name in ALL_VECTOR_COLUMNS
            if schema is not None and name in schema.names
        }

    @property
    def rows(self) -> int:
        return len(self.text_ids)

    def read(self, rows: np.ndarray, columns: Sequence[str]) -> dict[str, np.ndarray]:
        """The float32 (len(rows), width) matrix of each column at `rows` (any order, repeats
        allowed), decoding each row group that holds one of them once, one group at a time."""
        rows = np.asarray(rows, dtype=np.int64)
        out = {c: np.empty((len(rows), self.widths[c]), dtype=np.float32) for c in columns}
        if not len(rows):
            return out
        if rows.min() < 0 or rows.max() >= self.rows:
            raise IndexError(f"rows outside 0..{self.rows - 1} asked of a feature source")
        order = np.argsort(rows, kind="stable")
        wanted = rows[order]
        group_of = np.searchsorted(self._starts, wanted, side="right") - 1
        bounds = np.flatnonzero(np.diff(group_of)) + 1
        for lo, hi in zip(
            np.concatenate([[0], bounds]), np.concatenate([bounds, [len(wanted)]]), strict=True
        ):
            group = self._groups[int(group_of[lo])]
            table = self._read_group(group, columns)
            local = wanted[lo:hi] - group.start
            for name in columns:
                out[name][order[lo:hi]] = column_matrix(table.column(name))[local]
        return out

    def chunks(
        self, columns: Sequence[str], chunk_rows: int
    ) -> Iterator[tuple[int, dict[str, np.ndarray]]]:
        """Consecutive blocks of at most `chunk_rows` rows: (first row, matrices)."""
        for start, stop in _spans(self.rows, chunk_rows):
            yield start, self.read(np.arange(start, stop), columns)

    def load(self, columns: Sequence[str]) -> LoadedFeatures:
        """Every row of `columns` in memory (for an entry small enough to hold)."""
        return LoadedFeatures(
            self.text_ids, self.read(np.arange(self.rows), columns), self.manifest
        )

    def _read_group(self, group: _Group, columns: Sequence[str]) -> pa.Table:
        if self._observer is not None:
            self._observer(group.rows)
        try:
            with pa.memory_map(str(group.path)) as mapped:
                handle = pq.ParquetFile(mapped, metadata=group.metadata)
                return handle.read_row_group(group.index, columns=list(columns))
        except (pa.ArrowException, OSError) as error:
            raise FileProblem(
                group.path, f"cannot be read ({first_line(error, limit=80)})"
            ) from None


def _spans(rows: int, chunk_rows: int) -> Iterator[tuple[int, int]]:
    if chunk_rows < 1:
        raise ValueError(f"chunk_rows must be >= 1, not {chunk_rows}")
    for start in range(0, rows, chunk_rows):
        yield start, min(start + chunk_rows, rows)


@dataclass(frozen=True)
class LoadedFeatures:
    """An entry's columns held in memory, read like a `FeatureSource`."""

    text_ids: list[str]
    arrays: dict[str, np.ndarray]
    manifest: dict[str, Any]

    @property
    def rows(self) -> int:
        return len(self.text_ids)

    def read(self, rows: np.ndarray, columns: Sequence[str]) -> dict[str, np.ndarray]:
        """Each column's rows (a copy, as from disk)."""
        return {name: self.arrays[name][np.asarray(rows, dtype=np.int64)] for name in columns}

    def chunks(
        self, columns: Sequence[str], chunk_rows: int
    ) -> Iterator[tuple[int, dict[str, np.ndarray]]]:
        """Consecutive blocks of at most `chunk_rows` rows (views, not copies)."""
        for start, stop in _spans(self.rows, chunk_rows):
            yield start, {name: self.arrays[name][start:stop] for name in columns}


def open_source(
    cache_dir: Path,
    *,
    model: str,
    prompt_id: str,
    task: str,
    columns: Sequence[str],
    check_hashes: bool = True,
    observer: ReadObserver | None = None,
) -> FeatureSource:
    """Open a complete entry for chunked reads of `columns`, checked as `read_features` checks
    it, without decoding a feature.

    Raises:
        CacheError: the entry cannot be scored (in `read_features`' words, naming the file).
    """
    directory, manifest, listed = checked_entry(
        cache_dir, model=model, prompt_id=prompt_id, task=task, columns=columns
    )
    text_ids: list[str] = []
    groups: list[_Group] = []
    for path, record in listed:
        metadata = check_part(
            path, record, columns=["text_id", *columns], meta=manifest, check_hash=check_hashes
        )
        try:
            ids = pq.read_table(path, columns=["text_id"]).column(0).to_pylist()
        except (pa.ArrowException, OSError) as error:
            raise FileProblem(path, f"cannot be read ({first_line(error, limit=80)})") from None
        start = len(text_ids)
        for index in range(metadata.num_row_groups):
            rows = metadata.row_group(index).num_rows
            groups.append(_Group(path, metadata, index, start, rows))
            start += rows
        text_ids.extend(ids)
    problem = rows_problem(directory, manifest, len(text_ids))
    if problem is not None:
        raise problem
    return FeatureSource(text_ids, groups, manifest, observer=observer)
