"""The pairs a split's evaluation compares, read from the task data (never its labels)."""

from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np
import pytest
from mteb.abstasks import AbsTask

from moee_pipeline.tasks import load_task, private_copy
from moee_pipeline.tasks.pairs import (
    DOCS_PER_QUERY,
    document_texts,
    evaluation_pairs,
    retrieval_pairs,
)


def test_sts_pairs_are_the_rows() -> None:
    task = load_task("MoeeToySTS")
    assert task.dataset is not None
    data = task.dataset["test"]
    assert evaluation_pairs(task, "test") == list(
        zip(data["sentence1"], data["sentence2"], strict=True)
    )


def test_pair_classification_pairs() -> None:
    task = load_task("MoeeToyPairClassification")
    pairs = evaluation_pairs(task, "test")
    assert task.dataset is not None
    data = task.dataset["test"]
    first = data[0]["sentence1"] if len(data) == 1 else data["sentence1"]
    assert pairs is not None and len(pairs) == len(first) and pairs[0][0] == first[0]


def test_summarization_pairs_are_machine_by_human_per_text() -> None:
    task = load_task("MoeeToySummarization")
    assert task.dataset is not None
    data = task.dataset["test"]
    expected = [
        pair
        for machine, human in zip(data["machine_summaries"], data["human_summaries"], strict=True)
        for pair in itertools.product(machine, human)
    ]
    assert evaluation_pairs(task, "test") == expected


def test_other_types_have_no_fixed_pairs() -> None:
    for name in ("MoeeToyClassification", "MoeeToyClustering", "MoeeToyReranking"):
        assert evaluation_pairs(load_task(name), "test") is None


def _shuffled_qrels(task: AbsTask, seed: int) -> AbsTask:
    """The task with every qrels row's document replaced by a random one of the corpus."""
    clone = private_copy(task)
    data = clone.dataset["default"]["test"]  # type: ignore[index]
    ids = list(data["corpus"]["id"])
    rng = np.random.default_rng(seed)
    data["relevant_docs"] = {
        q: {ids[int(rng.integers(len(ids)))]: 1 for _ in docs}
        for q, docs in data["relevant_docs"].items()
    }
    return clone


@pytest.mark.integration
def test_retrieval_pairs_are_each_query_with_seeded_documents_and_read_no_relevance(
    mteb_data: Path,
) -> None:
    task = load_task("SciFact", data_dir=mteb_data)
    pairs = retrieval_pairs(task, "test")
    data = task.dataset["default"]["test"]  # type: ignore[index]
    queries = list(data["queries"]["text"])
    documents = set(document_texts(data["corpus"]))
    assert len(documents) == 5183 and "" not in documents
    assert len(pairs) == len(queries) * DOCS_PER_QUERY  # 300 queries, 9,600 pairs
    assert [q for q, _ in pairs[::DOCS_PER_QUERY]] == queries  # split order, each once
    assert all(d in documents for _, d in pairs)
    for i in range(0, len(pairs), DOCS_PER_QUERY):
        assert len({d for _, d in pairs[i : i + DOCS_PER_QUERY]}) == DOCS_PER_QUERY
    assert evaluation_pairs(task, "test") == pairs
    assert retrieval_pairs(_shuffled_qrels(task, seed=1), "test") == pairs
