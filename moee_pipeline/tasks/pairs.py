"""The text pairs a split's evaluation compares, for the task types whose score is a pair score.

STS and PairClassification score one similarity per row (sentence1, sentence2); Summarization
scores every machine summary of a text against every human summary of the same text. The other
types (Classification, Clustering, Reranking) compare no fixed pairs: callers sample pairs of the
texts the split encodes instead. Only text columns are read, never a label or a gold score.
"""

from __future__ import annotations

import itertools
from typing import Any

from datasets import Dataset
from mteb.abstasks import AbsTask
from mteb.abstasks.pair_classification import AbsTaskPairClassification
from mteb.abstasks.sts import AbsTaskSTS
from mteb.abstasks.text.summarization import AbsTaskSummarization

from moee_pipeline.tasks.registry import TaskError

PAIR_TYPES: tuple[str, ...] = ("STS", "PairClassification", "Summarization")


def _split_data(task: AbsTask, split: str) -> list[Any]:
    """The split's dataset in every evaluated subset."""
    dataset: Any = task.dataset
    subsets = [dataset[s] for s in task.hf_subsets if s in dataset]
    return [d[split] for d in (subsets or [dataset]) if split in d]


def _column(data: Any, name: Any, task: str) -> list[Any]:
    if not isinstance(name, str):
        raise TaskError(f"{task}: pair column {name!r} is not a plain text column")
    return list(data[name])


def evaluation_pairs(task: AbsTask, split: str) -> list[tuple[str, str]] | None:
    """The (text, text) pairs the split's evaluation scores; None for types without fixed pairs."""
    name = task.metadata.name
    out: list[tuple[str, str]] = []
    for data in _split_data(task, split):
        if isinstance(task, AbsTaskSTS):
            first, second = task.column_names[0], task.column_names[1]
            out.extend(zip(_column(data, first, name), _column(data, second, name), strict=True))
        elif isinstance(task, AbsTaskPairClassification):
            # v1 datasets hold all pairs in one row of lists, as mteb's own evaluation unpacks them
            rows = Dataset.from_dict(data[0]) if len(data) == 1 else data
            left = _column(rows, task.input1_column_name, name)
            right = _column(rows, task.input2_column_name, name)
            out.extend(zip(left, right, strict=True))
        elif isinstance(task, AbsTaskSummarization):
            machine = data[task.machine_summaries_column_name]
            human = data[task.human_summaries_column_name]
            for ours, theirs in zip(machine, human, strict=True):
                out.extend(itertools.product(ours, theirs))
        else:
            return None
    return out
