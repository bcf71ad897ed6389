"""A retrieval task's split from a local data dir: corpus, queries and qrels, checked.

The layout is BEIR's, as mteb 2's retrieval loader reads it, one file per part and split:
`<Task>/corpus/<split>.parquet` (id, title, text), `<Task>/queries/<split>.parquet` (id, text)
and `<Task>/qrels/<split>.parquet` (query-id, corpus-id, score). mteb itself accepts qrels that
name documents nobody has, or a corpus with one id twice, and then scores something else than
the user meant without a word; so every such flaw is refused here, before a model loads or a
cache file is written, with one line naming the file and what to do.
"""

from __future__ import annotations

import math
from collections import Counter
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
from datasets import Dataset

from moee_pipeline.tasks.registry import TaskError

#: The parts of a retrieval split and the columns each must have (title may be absent).
PARTS: dict[str, tuple[str, ...]] = {
    "corpus": ("id", "text"),
    "queries": ("id", "text"),
    "qrels": ("query-id", "corpus-id", "score"),
}


def _read(path: Path) -> pa.Table:
    if not path.is_file():
        raise TaskError(f"no {path}: a retrieval split needs corpus/, queries/ and qrels/ files")
    try:
        return pq.read_table(path)
    except (OSError, pa.ArrowException):
        raise TaskError(
            f"cannot read {path} as Parquet (not Parquet, or damaged): write it as Parquet"
        ) from None


def _checked(table: pa.Table, path: Path, part: str) -> pa.Table:
    """The table with its required columns present, rows present, and no null values in them."""
    missing = [c for c in PARTS[part] if c not in table.column_names]
    if missing:
        raise TaskError(
            f"{path} lacks column(s) {', '.join(missing)}: {part} needs {', '.join(PARTS[part])}"
        )
    if table.num_rows == 0:
        raise TaskError(f"{path} has no rows: a retrieval split needs its {part}")
    for column in (*PARTS[part], *(["title"] if "title" in table.column_names else [])):
        nulls = table.column(column).null_count
        if nulls:
            raise TaskError(
                f"{path}: column {column!r} has {nulls} null value(s); fill or drop those rows"
            )
    return table


def _ids(table: pa.Table, column: str, path: Path) -> list[str]:
    """The ids as strings (mteb keys qrels by string id), refusing any id given twice."""
    ids = [str(v) for v in table.column(column).to_pylist()]
    twice = [i for i, n in Counter(ids).items() if n > 1]
    if twice:
        raise TaskError(
            f"{path}: {len(twice)} id(s) appear more than once (first {twice[0]!r}): "
            "give every row its own id"
        )
    return ids


def _texts(table: pa.Table, column: str, path: Path) -> list[str]:
    values = table.column(column).to_pylist()
    if not all(isinstance(v, str) for v in values):
        raise TaskError(
            f"{path}: column {column!r} holds {table.schema.field(column).type}, "
            "not text: write it as strings"
        )
    return values


def _score(value: Any, path: Path) -> int:
    """A relevance grade as pytrec_eval takes it (an integer), or one line saying what is wrong."""
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise TaskError(f"{path}: qrels score {value!r} is not a number: write integer grades")
    if value != int(value):
        raise TaskError(f"{path}: qrels score {value!r} is not a whole number: use integer grades")
    return int(value)


def read_retrieval_split(folder: Path, split: str) -> dict[str, Any]:
    """One split as mteb 2 holds it: {"corpus", "queries", "relevant_docs", "top_ranked"}.

    Raises:
        TaskError: a file is missing or unreadable, lacks a column, has no rows or null values,
            repeats an id, holds a non-text text or non-number score, or its qrels name a
            query or document the split does not have.
    """
    paths = {part: folder / part / f"{split}.parquet" for part in PARTS}
    tables = {part: _checked(_read(p), p, part) for part, p in paths.items()}
    corpus, queries, qrels = tables["corpus"], tables["queries"], tables["qrels"]
    doc_ids = _ids(corpus, "id", paths["corpus"])
    query_ids = _ids(queries, "id", paths["queries"])
    n_docs = corpus.num_rows
    titles = _texts(corpus, "title", paths["corpus"]) if "title" in corpus.column_names else None
    corpus_data = {
        "id": doc_ids,
        "title": titles if titles is not None else [""] * n_docs,
        "text": _texts(corpus, "text", paths["corpus"]),
    }
    query_data = {"id": query_ids, "text": _texts(queries, "text", paths["queries"])}
    relevant: dict[str, dict[str, int]] = {}
    known_docs, known_queries = set(doc_ids), set(query_ids)
    rows = zip(
        qrels.column("query-id").to_pylist(),
        qrels.column("corpus-id").to_pylist(),
        qrels.column("score").to_pylist(),
        strict=True,
    )
    for qid, did, score in rows:
        qid, did = str(qid), str(did)
        if qid not in known_queries:
            raise TaskError(
                f"{paths['qrels']}: query-id {qid!r} is not in {paths['queries']}: "
                "drop that row or add the query"
            )
        if did not in known_docs:
            raise TaskError(
                f"{paths['qrels']}: corpus-id {did!r} is not in {paths['corpus']}: "
                "drop that row or add the document"
            )
        relevant.setdefault(qid, {})[did] = _score(score, paths["qrels"])
    return {
        "corpus": Dataset.from_dict(corpus_data),
        "queries": Dataset.from_dict(query_data),
        "relevant_docs": relevant,
        "top_ranked": None,
    }


def has_retrieval_layout(folder: Path) -> bool:
    """Whether a task folder is laid out as corpus/, queries/ and qrels/ split files."""
    return all((folder / part).is_dir() for part in PARTS)
