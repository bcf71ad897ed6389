"""Retrieval scoring: the cached encoder through mteb's own retrieval evaluator (its search
wrapper), checked against nDCG@10 computed independently in NumPy from the same vectors."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
from mteb.abstasks import AbsTask

from moee_pipeline.cache.parts import text_id
from moee_pipeline.score.encoder import CachedEncoder, evaluate_split, row_index
from moee_pipeline.score.vectors import InMemoryVectors, VectorSource
from tests.support.data import retrieval_subset
from tests.support.ndcg import ndcg_at_10
from tests.support.vectors import CountingVectors

DIM = 16


@pytest.fixture(scope="module")
def scifact(mteb_data: Path, tmp_path_factory: pytest.TempPathFactory) -> AbsTask:
    """SciFact (test) from a data dir: every relevant document and 700 others, all queries."""
    from moee_pipeline.tasks import load_task

    data = retrieval_subset(mteb_data, "SciFact", tmp_path_factory.mktemp("data"), others=700)
    return load_task("SciFact", data_dir=data)


def _split_data(task: AbsTask) -> Any:
    return task.dataset["default"]  # type: ignore[index]


def _documents(task: AbsTask) -> tuple[list[str], list[str], list[str], list[str]]:
    """(query ids, query texts, document ids, document texts as mteb builds them)."""
    split = _split_data(task)["test"]
    corpus, queries = split["corpus"], split["queries"]
    docs = [(t + " " + x).strip() for t, x in zip(corpus["title"], corpus["text"], strict=True)]
    return list(queries["id"]), list(queries["text"]), list(corpus["id"]), docs


def _vectors(task: AbsTask) -> tuple[list[str], np.ndarray]:
    """Seeded vectors where each query lies near one of its relevant documents (so nDCG@10 is
    far from 0 and from 1): texts in cache order and their float32 matrix."""
    qids, queries, dids, docs = _documents(task)
    relevant = _split_data(task)["test"]["relevant_docs"]
    rng = np.random.default_rng(7)
    doc_vecs = rng.standard_normal((len(docs), DIM)).astype(np.float32)
    row = {d: i for i, d in enumerate(dids)}
    near = np.array([row[sorted(relevant[q])[0]] for q in qids])
    query_vecs = doc_vecs[near] + 1.5 * rng.standard_normal((len(qids), DIM)).astype(np.float32)
    return [*queries, *docs], np.vstack([query_vecs, doc_vecs])


def _ndcg_at_10(task: AbsTask, texts: list[str], matrix: np.ndarray) -> float:
    qids, queries, dids, docs = _documents(task)
    row = {t: i for i, t in enumerate(texts)}
    return ndcg_at_10(
        dict(zip(qids, queries, strict=True)),
        dict(zip(dids, docs, strict=True)),
        _split_data(task)["test"]["relevant_docs"],
        lambda batch: matrix[[row[t] for t in batch]],
    )


@pytest.mark.integration
def test_retrieval_score_of_cached_vectors_is_ndcg_at_10_computed_in_numpy(
    scifact: AbsTask,
) -> None:
    texts, matrix = _vectors(scifact)
    encoder = CachedEncoder(index=row_index([text_id(t) for t in texts]), embeddings=matrix)
    score, _ = evaluate_split(scifact, encoder=encoder, split="test")
    assert (score.task_type, score.main_metric) == ("Retrieval", "ndcg_at_10")
    expected = _ndcg_at_10(scifact, texts, matrix)
    assert 0.2 < expected < 0.9  # the check means something
    assert score.main_score == pytest.approx(expected, abs=1e-5)  # mteb stores 5 decimals


@pytest.mark.integration
def test_any_vector_source_gives_the_same_score_and_sees_queries_then_corpus(
    scifact: AbsTask,
) -> None:
    texts, matrix = _vectors(scifact)
    index = row_index([text_id(t) for t in texts])
    source = CountingVectors(InMemoryVectors(matrix))
    assert isinstance(source, VectorSource)
    by_matrix, _ = evaluate_split(
        scifact, encoder=CachedEncoder(index=index, embeddings=matrix), split="test"
    )
    by_source, _ = evaluate_split(
        scifact, encoder=CachedEncoder(index=index, embeddings=source), split="test"
    )
    assert by_source.main_score == by_matrix.main_score
    n_queries = len(_split_data(scifact)["test"]["queries"])
    assert source.asked == [n_queries, len(texts) - n_queries]  # one corpus chunk at this size
