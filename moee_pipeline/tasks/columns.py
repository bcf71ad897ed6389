"""The columns a task's evaluation encodes as text, and the check that they hold text.

mteb passes whatever those columns hold to the encoder; a column of integers gets as far as
the recorder, which fails deep inside pyarrow when it stores the "texts". So every task's data
is checked when it is loaded (a data dir's split files, a snapshot or the task's own loader),
before anything is recorded or written: by its Arrow types, without reading a row.

The columns come from each task type's own public attributes (`column_names` of STS,
`input_column_name` of Classification and Clustering, ...). Types this package reads no data
dir for (retrieval-style Reranking) declare none and are left to mteb.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pyarrow as pa
from datasets import Dataset
from mteb.abstasks import (
    AbsTask,
    AbsTaskClassification,
    AbsTaskClustering,
    AbsTaskClusteringLegacy,
    AbsTaskPairClassification,
    AbsTaskSTS,
    AbsTaskSummarization,
)

from moee_pipeline.tasks.registry import TaskError

#: Where a split's data came from, for the error line: (subset or None, split) -> a file or name.
Source = Callable[[str | None, str], str]


def text_columns(task: AbsTask) -> list[str]:
    """The columns whose values (texts, or lists of texts) the task's evaluation encodes."""
    columns: tuple[Any, ...]
    if isinstance(task, AbsTaskSTS):
        columns = tuple(task.column_names)
    elif isinstance(task, AbsTaskPairClassification):
        columns = (task.input1_column_name, task.input2_column_name)
    elif isinstance(task, AbsTaskSummarization):  # the summaries are encoded, not the text
        columns = (task.human_summaries_column_name, task.machine_summaries_column_name)
    elif isinstance(task, AbsTaskClassification | AbsTaskClustering | AbsTaskClusteringLegacy):
        columns = (task.input_column_name,)
    else:
        return []
    return [c for c in columns if isinstance(c, str)]  # a multimodal mapping is not plain text


def _holds_text(kind: pa.DataType) -> bool:
    """A string type, or lists (of lists...) of one: mteb's v1 tasks keep texts in lists."""
    if pa.types.is_dictionary(kind):
        return _holds_text(kind.value_type)
    if pa.types.is_list(kind) or pa.types.is_large_list(kind) or pa.types.is_fixed_size_list(kind):
        return _holds_text(kind.value_type)
    return (
        pa.types.is_string(kind) or pa.types.is_large_string(kind) or pa.types.is_string_view(kind)
    )


def _splits(task: AbsTask) -> Iterator[tuple[str | None, str, Dataset]]:
    """(subset or None, split, data) of every split the loaded task holds."""
    dataset: Any = task.dataset
    if task.metadata.is_multilingual and isinstance(dataset, dict):
        for subset in task.hf_subsets:
            for split, data in (dataset.get(subset) or {}).items():
                yield subset, str(split), data
        return
    for split, data in dict(dataset or {}).items():
        yield None, str(split), data


def check_text_columns(task: AbsTask, source: Source, *, fix: str) -> None:
    """Refuse data whose encoded columns hold anything but text (one line: where, which, what).

    `source` names where each split came from (a split file, a snapshot file); `fix` says what
    to do beyond writing the column as strings. Columns a split lacks are left to mteb's own
    check, which names them.

    Raises:
        TaskError: a column the evaluation encodes has a non-text type.
    """
    columns = text_columns(task)
    for subset, split, data in _splits(task):
        if not isinstance(data, Dataset):
            continue
        schema = data.features.arrow_schema
        for column in columns:
            if column not in schema.names:
                continue
            kind = schema.field(column).type
            if not _holds_text(kind):
                raise TaskError(
                    f"{source(subset, split)}: column {column!r} holds {kind}, not text "
                    f"(mteb encodes it for {task.metadata.name}): write it as strings{fix}"
                )
