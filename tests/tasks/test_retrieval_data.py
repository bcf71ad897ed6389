"""A retrieval split from a data dir: what is read, and a snapshot that other qrels cannot
silently replace."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from moee_pipeline.cache.snapshots import write_snapshot
from moee_pipeline.tasks import load_task
from moee_pipeline.tasks.registry import TaskError
from moee_pipeline.tasks.retrieval_data import read_retrieval_split

#: One part of a split: {column: values}.
Part = dict[str, list[object]]


def _write(root: Path, **columns: Part) -> Path:
    for part, data in columns.items():
        (root / "SciFact" / part).mkdir(parents=True, exist_ok=True)
        pq.write_table(pa.table(data), root / "SciFact" / part / "test.parquet")
    return root


def _split(qrels_score: list[object], corpus: Part | None = None) -> dict[str, Part]:
    return {
        "corpus": corpus or {"id": ["d1", "d2"], "title": ["T", ""], "text": ["one", " two "]},
        "queries": {"id": ["q1", "q2"], "text": ["first?", "second?"]},
        "qrels": {"query-id": ["q1", "q2"], "corpus-id": ["d1", "d2"], "score": qrels_score},
    }


def test_a_split_is_read_as_mteb_holds_it(tmp_path: Path) -> None:
    root = _write(tmp_path, **_split([1.0, 2]))  # whole floats are grades too
    split = read_retrieval_split(root / "SciFact", "test")
    assert split["relevant_docs"] == {"q1": {"d1": 1}, "q2": {"d2": 2}}
    assert split["corpus"]["title"] == ["T", ""] and split["top_ranked"] is None
    untitled: Part = {"id": ["d1", "d2"], "text": ["one", "two"]}
    root = _write(tmp_path / "untitled", **_split([1, 1], corpus=untitled))
    assert read_retrieval_split(root / "SciFact", "test")["corpus"]["title"] == ["", ""]


def test_a_fractional_grade_is_refused(tmp_path: Path) -> None:
    root = _write(tmp_path, **_split([1.5, 1]))
    with pytest.raises(TaskError, match=r"qrels score 1.5 is not a whole number"):
        read_retrieval_split(root / "SciFact", "test")


def test_other_qrels_than_the_snapshot_are_refused(tmp_path: Path) -> None:
    data = _write(tmp_path / "data", **_split([1, 1]))
    cache = tmp_path / "cache"
    write_snapshot(load_task("SciFact", data_dir=data), cache_dir=cache)
    assert load_task("SciFact", cache_dir=cache, data_dir=data).data_loaded
    _write(data, qrels={"query-id": ["q1"], "corpus-id": ["d2"], "score": [1]})
    with pytest.raises(TaskError, match=r"relevant_docs: other qrels \(1 queries judged, the "):
        load_task("SciFact", cache_dir=cache, data_dir=data)


def test_the_recording_keeps_each_texts_side_as_mteb_encoded_it(tmp_path: Path) -> None:
    from moee_pipeline.cache.snapshots import read_text_sides
    from moee_pipeline.tasks import split_texts
    from moee_pipeline.testing.toy_retrieval import toy_corpus

    cache = tmp_path / "cache"
    for name in ("MoeeToyRetrieval", "MoeeToySTS"):
        write_snapshot(load_task(name), cache_dir=cache)
        split_texts(load_task(name, cache_dir=cache), cache_dir=cache)
    sides = read_text_sides("MoeeToyRetrieval", "test", cache_dir=cache)
    assert sides is not None and len(sides) == 31
    corpus = toy_corpus()
    documents = [
        (t + " " + x).strip() for t, x in zip(corpus["title"], corpus["text"], strict=True)
    ]
    both = corpus["text"][0]  # doc0 has no title: its text is also the last query
    assert sides[both] == ("query", "document")
    assert all(sides[d] == ("document",) for d in documents if d != both)
    queries = [t for t, s in sides.items() if s == ("query",)]
    assert len(queries) == 7
    sts = read_text_sides("MoeeToySTS", "test", cache_dir=cache)
    assert sts is not None and set(sts.values()) == {()}  # no sides in a symmetric task
