"""A score of two templates: a retrieval task's queries from one entry, its documents from another.

With `--query-prompt` and `--document-prompt` of different templates (sides.py) the unit's
prompt is their `pair_label` and its features are two entries, read as one (`JoinedRows`): the
query entry's rows, then the document entry's. The cached encoder looks each text up in its
side's rows (`side_index`), as mteb's `prompt_type` says which side it encodes, so a text that
is both a query and a document gets each side's own vector. The z-score statistics stay one set
over the texts the split's evaluation encodes, queries and documents together: the fit rows
are the queries' rows in the query entry and the documents' rows in the document entry
(`fit_rows`). Both entries must come from one model run's settings but their prompt.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Collection, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from moee_pipeline.cache.source import RowReader
from moee_pipeline.score.config import ScoreError
from moee_pipeline.score.encoder import cache_rows, row_index
from moee_pipeline.score.rows import Provenance
from moee_pipeline.vocabulary import DOCUMENT, QUERY, Side, ZscoreFit

__all__ = [
    "JoinedRows",
    "check_alike",
    "fit_rows",
    "joined",
    "provenance_of",
    "side_index",
]

#: What both sides' entries must share: one model and the same feature shapes and settings.
_ALIKE = (
    "model",
    "revision",
    "quantization",
    "dtype",
    "max_length",
    "n_moe_layers",
    "n_experts",
    "hidden_size",
)


def check_alike(query: Mapping[str, Any], document: Mapping[str, Any], *, where: str) -> None:
    """Refuse two sides' entries made with other settings (their vectors would not compare)."""
    other = [k for k in _ALIKE if query.get(k) != document.get(k)]
    if other:
        k = other[0]
        raise ScoreError(
            f"{where}: the query and document entries differ in {k} ({query.get(k)!r} vs "
            f"{document.get(k)!r}): extract both sides with the same settings"
        )


@dataclass(frozen=True)
class JoinedRows:
    """The query entry's rows, then the document entry's: one `RowReader` of both sides."""

    query: RowReader
    document: RowReader
    text_ids: list[str] = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "text_ids", [*self.query.text_ids, *self.document.text_ids])

    @property
    def manifest(self) -> dict[str, Any]:
        """The query entry's manifest (the shapes and settings both share: `check_alike`)."""
        return self.query.manifest

    @property
    def rows(self) -> int:
        return self.query.rows + self.document.rows

    def read(self, rows: np.ndarray, columns: Sequence[str]) -> dict[str, np.ndarray]:
        """Each column at `rows`, in their order, each side's rows read from its entry."""
        rows = np.asarray(rows, dtype=np.int64)
        split = self.query.rows
        first = rows < split
        ours = self.query.read(rows[first], columns)
        theirs = self.document.read(rows[~first] - split, columns)
        out: dict[str, np.ndarray] = {}
        for name in columns:
            width = ours[name].shape[1]
            out[name] = np.empty((len(rows), width), dtype=np.float32)
            out[name][first] = ours[name]
            out[name][~first] = theirs[name]
        return out

    def chunks(
        self, columns: Sequence[str], chunk_rows: int
    ) -> Iterator[tuple[int, dict[str, np.ndarray]]]:
        """The query entry's chunks, then the document entry's (their rows after the queries)."""
        yield from self.query.chunks(columns, chunk_rows)
        for start, arrays in self.document.chunks(columns, chunk_rows):
            yield start + self.query.rows, arrays


def side_index(rows: JoinedRows) -> dict[Side, dict[str, int]]:
    """text_id -> row of the joined rows, per side: the queries' rows, the documents' rows."""
    split = rows.query.rows
    documents = {tid: split + row for tid, row in row_index(rows.document.text_ids).items()}
    return {QUERY: row_index(rows.query.text_ids), DOCUMENT: documents}


def fit_rows(
    texts: Sequence[str],
    text_sides: Mapping[str, Collection[str]],
    index: Mapping[Side, Mapping[str, int]],
    *,
    where: str,
    hint: str,
) -> np.ndarray:
    """The rows the split's z-score statistics are fitted on: each query's row in the query
    entry, each document's in the document entry (a text that is both: both rows)."""
    found = []
    for side in (QUERY, DOCUMENT):
        mine = [t for t in texts if side in text_sides.get(t, ())]
        found.append(cache_rows(mine, index[side], where=f"{where} ({side}s)", hint=hint))
    return np.concatenate(found)


def joined(readers: Sequence[RowReader], *, where: str) -> RowReader:
    """A unit's features from its entries' readers: one entry's, or two sides' as one."""
    if len(readers) == 1:
        return readers[0]
    check_alike(readers[0].manifest, readers[1].manifest, where=where)
    return JoinedRows(readers[0], readers[1])


def provenance_of(features: RowReader, *, zscore_fit: ZscoreFit) -> Provenance:
    """A row's provenance; a unit of two entries is fingerprinted by both (`query+document`)."""
    provenance = Provenance.of(features.manifest, zscore_fit=zscore_fit)
    if not isinstance(features, JoinedRows):
        return provenance
    document = Provenance.of(features.document.manifest, zscore_fit=zscore_fit)
    return dataclasses.replace(provenance, features=f"{provenance.features}+{document.features}")
