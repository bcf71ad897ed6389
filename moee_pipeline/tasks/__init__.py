"""MTEB tasks for both stages: which exist (registry), their data offline (loading), and the
exact texts their evaluation encodes (recording).
"""

from moee_pipeline.cache.snapshots import write_snapshot
from moee_pipeline.tasks.loading import data_splits, eval_splits, load_task, private_copy
from moee_pipeline.tasks.recording import split_texts, task_texts
from moee_pipeline.tasks.registry import (
    PAPER_TASKS,
    TASK_TYPES,
    TaskError,
    get_task,
    select_tasks,
    task_type,
)

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
