"""Which tasks exist and which to run: the paper's 19, every mteb task of six types, and the
tasks other packages register.

A registered task is an mteb `AbsTask` subclass that mteb does not know, found through the
entry point group `moee_pipeline.tasks`: each entry point names a mapping {task name: class}.
This package registers its in-code toy tasks there (pyproject.toml), so the registry treats
them as it would any plugin's, and imports none of them itself.

Choosing among the paper's tasks needs no mteb (2-3 s to import): `moee extract` validates its
task list at once and leaves mteb to the process that records the texts.
"""

from __future__ import annotations

import difflib
import importlib.metadata
import logging
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

from moee_pipeline.errors import MoeeError, first_line
from moee_pipeline.vocabulary import PAPER_TASKS, SUPPORTED_TASK_TYPES

if TYPE_CHECKING:
    from mteb.abstasks import AbsTask

logger = logging.getLogger(__name__)

#: The entry point group other packages (and ours, for the toy tasks) register tasks in.
ENTRY_POINTS = "moee_pipeline.tasks"


class TaskError(MoeeError):
    """A task cannot be found, selected or loaded; the message says what to do."""


def registered_tasks() -> dict[str, type[AbsTask]]:
    """Every task registered through the `moee_pipeline.tasks` entry points, by name.

    Read from the installed packages' metadata on each call (milliseconds), so a package
    installed meanwhile counts; a registration that cannot be loaded is one clear error.

    Raises:
        TaskError: an entry point fails to import, or names something that is not a mapping
            of task names to task classes.
    """
    from mteb.abstasks import AbsTask

    found: dict[str, type[AbsTask]] = {}
    for point in importlib.metadata.entry_points(group=ENTRY_POINTS):
        try:
            tasks = point.load()
        except Exception as error:  # an installed plugin's own bug: name it, do not crash
            raise TaskError(
                f"the task registration {point.name!r} ({point.value}) cannot be loaded "
                f"({type(error).__name__}: {first_line(error)}); fix or uninstall its package"
            ) from error
        valid = isinstance(tasks, Mapping) and all(
            isinstance(cls, type) and issubclass(cls, AbsTask) for cls in tasks.values()
        )
        if not valid:
            raise TaskError(
                f"the task registration {point.name!r} ({point.value}) is not a mapping of "
                "task names to mteb AbsTask classes; fix or uninstall its package"
            )
        for name, cls in tasks.items():
            if name in found and found[name] is not cls:
                logger.warning("task %s is registered twice; using %s", name, point.value)
            found[str(name)] = cls
    return found


def is_registered(name: str) -> bool:
    """Whether `name` is a registered task (not one of mteb's)."""
    return name in registered_tasks()


def _known_task_names(registered: Mapping[str, object]) -> list[str]:
    """Names of the registered tasks and of every mteb task of a supported type."""
    import mteb

    names = list(registered)
    names += [t.metadata.name for t in mteb.get_tasks(task_types=list(SUPPORTED_TASK_TYPES))]
    return names


def get_task(name: str) -> AbsTask:
    """A fresh task instance: registered tasks first, then mteb's registry."""
    import mteb

    registered = registered_tasks()
    if name in registered:
        task = registered[name]()
    else:
        try:
            task = mteb.get_task(name)
        except KeyError:
            close = difflib.get_close_matches(name, _known_task_names(registered), n=3)
            hint = f"did you mean {', '.join(close)}? " if close else ""
            extra = f" or a registered task ({', '.join(registered)})" if registered else ""
            raise TaskError(
                f"unknown task {name!r}: {hint}list tasks with "
                f"`python -c \"import mteb; print(mteb.get_tasks(task_types=['STS']))\"`{extra}"
            ) from None
    if task.metadata.type not in SUPPORTED_TASK_TYPES:
        raise TaskError(
            f"task {name!r} is of type {task.metadata.type}; "
            f"supported types: {', '.join(SUPPORTED_TASK_TYPES)}"
        )
    return task


def task_type(name: str) -> str:
    """The MTEB task type of a task (e.g. "STS"), without loading its data."""
    if name in PAPER_TASKS:
        return PAPER_TASKS[name]
    return str(get_task(name).metadata.type)


def check_task_types(task_types: Sequence[str] | None) -> None:
    """Refuse a task type neither stage takes (TaskError naming those it does)."""
    for kind in task_types or ():
        if kind not in SUPPORTED_TASK_TYPES:
            raise TaskError(
                f"unknown task type {kind!r}: choose from {', '.join(SUPPORTED_TASK_TYPES)}"
            )


def select_tasks(
    *, tasks: Sequence[str] | None = None, task_types: Sequence[str] | None = None
) -> list[str]:
    """Task names to run: explicit names, else the paper's tasks of the given types, else all 19.

    None means "not given"; an empty list given is refused (TaskError), never read as the
    default, so `--tasks ""` cannot turn into the 19 tasks nobody asked for.
    """
    for option, given in (("--tasks", tasks), ("--task-types", task_types)):
        if given is not None and not given:
            raise TaskError(f"{option} names nothing: name at least one, or leave {option} out")
    check_task_types(task_types)
    if tasks:
        selected = list(dict.fromkeys(tasks))
        for name in selected:
            kind = task_type(name)  # raises TaskError for unknown names
            if task_types and kind not in task_types:
                raise TaskError(f"task {name} is of type {kind}, not in {', '.join(task_types)}")
        return selected
    if task_types:
        chosen = [name for name, kind in PAPER_TASKS.items() if kind in task_types]
        if not chosen:
            raise TaskError(
                f"none of the paper's tasks is of type {', '.join(task_types)}: name tasks with "
                "--tasks, or a benchmark with --benchmark"
            )
        return chosen
    return list(PAPER_TASKS)
