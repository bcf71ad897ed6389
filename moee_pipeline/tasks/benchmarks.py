"""Whole MTEB benchmarks by name (`--benchmark`): their tasks, and the ones we cannot score.

A benchmark such as `MTEB(eng, v2)` mixes the paper's six types and Retrieval with types this
package does not score (e.g. BitextMining). Running the rest in silence would publish an
average that looks like the benchmark's and is not, so such tasks are refused with one line
naming them, before any model loads, unless the user asks to skip them; the skipped ones are
then written beside the scores and listed in the report's notes.

The tasks are taken by name: a benchmark's own narrowing of a task (subsets, splits) is not
kept, each task runs with its own eval splits, as `--tasks` would run it.
"""

from __future__ import annotations

import difflib
from collections.abc import Sequence
from dataclasses import dataclass

from moee_pipeline.tasks.registry import TaskError
from moee_pipeline.vocabulary import SUPPORTED_TASK_TYPES


@dataclass(frozen=True)
class BenchmarkSelection:
    """The tasks of a benchmark to run, and those left out as of a type we do not score."""

    benchmark: str
    tasks: tuple[str, ...]
    skipped: dict[str, str]  # task name -> its type


def benchmark_tasks(
    name: str, *, task_types: Sequence[str] | None = None, skip_unsupported: bool = False
) -> BenchmarkSelection:
    """The tasks of mteb's benchmark `name` (of `task_types` only, when given).

    Raises:
        TaskError: no such benchmark; or it has tasks of types we do not score and
            `skip_unsupported` is off (the line names the types and their tasks); or no task
            of it is left.
    """
    import mteb

    try:
        benchmark = mteb.get_benchmark(name)
    except (KeyError, ValueError):
        names = [b.name for b in mteb.get_benchmarks()]
        close = difflib.get_close_matches(name, names, n=3)
        hint = f"did you mean {', '.join(close)}? " if close else ""
        raise TaskError(
            f"unknown benchmark {name!r}: {hint}list them with "
            '`python -c "import mteb; print([b.name for b in mteb.get_benchmarks()])"`'
        ) from None
    kinds = {t.metadata.name: str(t.metadata.type) for t in benchmark.tasks}
    unsupported = {t: k for t, k in kinds.items() if k not in SUPPORTED_TASK_TYPES}
    if unsupported and not skip_unsupported:
        types = sorted(set(unsupported.values()))
        listed = ", ".join(list(unsupported)[:3]) + (", ..." if len(unsupported) > 3 else "")
        raise TaskError(
            f"benchmark {name} has {len(unsupported)} task(s) of type(s) we do not score "
            f"({', '.join(types)}: {listed}): pass --skip-unsupported to score the rest"
        )
    chosen = [t for t, k in kinds.items() if t not in unsupported]
    if task_types:
        chosen = [t for t in chosen if kinds[t] in task_types]
    if not chosen:
        raise TaskError(
            f"benchmark {name} has no task of a type we score"
            + (f" among {', '.join(task_types)}" if task_types else "")
            + ": choose another benchmark or type"
        )
    return BenchmarkSelection(name, tuple(dict.fromkeys(chosen)), unsupported)
