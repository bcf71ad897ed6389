"""MTEB tasks for both stages: which exist (registry), their data offline (loading), and the
exact texts their evaluation encodes (recording).

Names are imported on first use: `from moee_pipeline.tasks.registry import select_tasks` must
not import mteb through this package.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # the real names, for the type checker
    from moee_pipeline.cache.snapshots import write_snapshot
    from moee_pipeline.tasks.loading import data_splits, eval_splits, load_task, private_copy
    from moee_pipeline.tasks.recording import split_texts, task_texts
    from moee_pipeline.tasks.registry import (
        PAPER_TASKS,
        TaskError,
        get_task,
        select_tasks,
        task_type,
    )
    from moee_pipeline.vocabulary import TASK_TYPES

_HOMES = {
    "write_snapshot": "moee_pipeline.cache.snapshots",
    "data_splits": "moee_pipeline.tasks.loading",
    "eval_splits": "moee_pipeline.tasks.loading",
    "load_task": "moee_pipeline.tasks.loading",
    "private_copy": "moee_pipeline.tasks.loading",
    "split_texts": "moee_pipeline.tasks.recording",
    "task_texts": "moee_pipeline.tasks.recording",
    "PAPER_TASKS": "moee_pipeline.tasks.registry",
    "TASK_TYPES": "moee_pipeline.vocabulary",
    "TaskError": "moee_pipeline.tasks.registry",
    "get_task": "moee_pipeline.tasks.registry",
    "select_tasks": "moee_pipeline.tasks.registry",
    "task_type": "moee_pipeline.tasks.registry",
}

__all__ = [
    "PAPER_TASKS",
    "TASK_TYPES",
    "TaskError",
    "data_splits",
    "eval_splits",
    "get_task",
    "load_task",
    "private_copy",
    "select_tasks",
    "split_texts",
    "task_texts",
    "task_type",
    "write_snapshot",
]


def __getattr__(name: str) -> Any:
    if name not in _HOMES:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(_HOMES[name]), name)
