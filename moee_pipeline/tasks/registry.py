"""Which tasks exist and which to run: the paper's 19, toy tasks, every mteb task of six types.

Choosing among the paper's tasks needs no mteb (2-3 s to import): `moee extract` validates its
task list at once and leaves mteb to the process that records the texts.
"""

from __future__ import annotations

import difflib
from collections.abc import Sequence
from typing import TYPE_CHECKING

from moee_pipeline.errors import MoeeError
from moee_pipeline.vocabulary import PAPER_TASKS, TASK_TYPES

if TYPE_CHECKING:
    from mteb.abstasks import AbsTask


class TaskError(MoeeError):
    """A task cannot be found, selected or loaded; the message says what to do."""


def _known_task_names() -> list[str]:
    """Names of the toy tasks and of every mteb task of the six supported types."""
    import mteb

    from moee_pipeline.testing.toy import TOY_TASKS

    names = list(TOY_TASKS)
    names += [t.metadata.name for t in mteb.get_tasks(task_types=list(TASK_TYPES))]
    return names


def get_task(name: str) -> AbsTask:
    """A fresh task instance: toy tasks first, then mteb's registry."""
    import mteb

    from moee_pipeline.testing.toy import TOY_TASKS

    if name in TOY_TASKS:
        return TOY_TASKS[name]()
    try:
        task = mteb.get_task(name)
    except KeyError:
        close = difflib.get_close_matches(name, _known_task_names(), n=3)
        hint = f"did you mean {', '.join(close)}? " if close else ""
        raise TaskError(
            f"unknown task {name!r}: {hint}give an MTEB task name as `mteb.get_tasks()` lists "
            "them, e.g. STSBenchmark"
        ) from None
    if task.metadata.type not in TASK_TYPES:
        raise TaskError(
            f"task {name!r} is of type {task.metadata.type}; "
            f"supported types: {', '.join(TASK_TYPES)}"
        )
    return task


def task_type(name: str) -> str:
    """The MTEB task type of a task (e.g. "STS"), without loading its data."""
    if name in PAPER_TASKS:
        return PAPER_TASKS[name]
    return str(get_task(name).metadata.type)


def select_tasks(
    *, tasks: Sequence[str] | None = None, task_types: Sequence[str] | None = None
) -> list[str]:
    """Task names to run: explicit names, else the paper's tasks of the given types, else all 19."""
    for kind in task_types or ():
        if kind not in TASK_TYPES:
            raise TaskError(f"unknown task type {kind!r}: choose from {', '.join(TASK_TYPES)}")
    if tasks:
        selected = list(dict.fromkeys(tasks))
        for name in selected:
            kind = task_type(name)  # raises TaskError for unknown names
            if task_types and kind not in task_types:
                raise TaskError(f"task {name} is of type {kind}, not in {', '.join(task_types)}")
        return selected
    if task_types:
        return [name for name, kind in PAPER_TASKS.items() if kind in task_types]
    return list(PAPER_TASKS)
