"""Classification labels read once, not row by row, under mteb's own sampling and metrics.

datasets 5 returns a lazy column that mteb's few-shot undersampling indexes once per train row
and sklearn's checks iterate dozens of times per experiment: together about 80% of a
classification run, whether the encoder is the cached one of scoring or the recorder of
extraction. The algorithms stay mteb's; only how they read the labels changes.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from datasets import Dataset
from datasets.arrow_dataset import Column
from mteb.abstasks.classification import AbsTaskClassification


class _LabelsInMemory:
    """A dataset whose label column reads as one list; everything else is the dataset's own."""

    def __init__(self, dataset: Dataset, column: str) -> None:
        self._dataset, self._column = dataset, column
        self._labels = dataset[column][:]

    def __len__(self) -> int:
        return len(self._dataset)

    def __getitem__(self, key: Any) -> Any:
        return self._labels if key == self._column else self._dataset[key]

    def select(self, indices: Sequence[int]) -> Dataset:
        return self._dataset.select(indices)


def eager_labels(task: AbsTaskClassification) -> None:
    """Make this task object's sampling and metrics read each label column once."""
    cls = type(task)
    column = task.label_column_name
    undersample, metrics = cls._undersample_data, cls._calculate_scores
    memo: dict[int, _LabelsInMemory] = {}

    def undersample_data(dataset: Dataset, experiment_num: int, idxs: Any = None) -> Any:
        eager = memo.setdefault(id(dataset), _LabelsInMemory(dataset, column))
        return undersample(task, eager, experiment_num, idxs)

    def calculate_scores(y_test: Any, y_pred: Any) -> Any:
        labels = np.asarray(y_test[:] if isinstance(y_test, Column) else y_test)
        return metrics(task, labels, y_pred)

    # private mteb hooks, replaced on a private copy; tests/tasks/test_mteb_internals.py checks them
    task._undersample_data = undersample_data  # type: ignore[method-assign]
    task._calculate_scores = calculate_scores  # type: ignore[method-assign]
