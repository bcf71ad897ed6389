"""The pairs a split's evaluation compares, read from the task data (never its labels)."""

from __future__ import annotations

import itertools

from moee_pipeline.tasks import load_task
from moee_pipeline.tasks.pairs import evaluation_pairs


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
