"""Which tasks a run still has to extract, and their texts: from the cache or the recorder.

Task data is loaded before any model, so a bad task name or data dir fails in seconds, not
after a multi-minute model load. A task whose texts were recorded before (a second model,
prompt or rerun) is read from its snapshot without mteb or datasets.
"""

from __future__ import annotations

from collections.abc import Sequence
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Any

from moee_pipeline.cache import layout, snapshots, store
from moee_pipeline.extract.engine import ExtractRequest
from moee_pipeline.extract.recorder import TaskRecorder
from moee_pipeline.extract.reuse import check_same_settings, expected_settings
from moee_pipeline.extract.settings import ExtractOptions, TaskSummary
from moee_pipeline.models.spec import ModelSpec
from moee_pipeline.prompts import Prompt


@dataclass(frozen=True)
class TaskTexts:
    """A task to extract: the splits it covers and the texts its evaluation encodes."""

    name: str
    splits: list[str]
    pending: Future[list[str]]

    @property
    def texts(self) -> list[str]:
        """The texts, once recorded (the recorder is waited for here)."""
        return self.pending.result()


def _known(texts: list[str]) -> Future[list[str]]:
    done: Future[list[str]] = Future()
    done.set_result(texts)
    return done


def recorded(
    tasks: Sequence[str], *, options: ExtractOptions, splits: Sequence[str] | None = None
) -> dict[str, dict[str, list[str]] | None]:
    """Each task's recorded texts by split, read once; None where the recorder must run.

    Chosen splits (`splits`) are always recorded: the snapshot's lists cover its own splits.
    """
    if splits is not None:
        return dict.fromkeys(tasks)
    return {n: snapshots.recorded_task_texts(n, cache_dir=options.cache_dir) for n in tasks}


def _already_done(
    spec: ModelSpec, *, options: ExtractOptions, task: str, prompts: Sequence[Prompt]
) -> list[TaskSummary] | None:
    """Summaries when every prompt of a task is complete with these settings, else None.

    Checked before anything is loaded; settings that need the model (revision) are checked
    again by `extract_task`.
    """
    summaries = []
    for prompt in prompts:
        folder = layout.task_dir(
            options.cache_dir, model=spec.model, prompt_id=prompt.id, task=task
        )
        manifest = store.read_manifest(folder)
        if manifest is None:
            return None
        expected = expected_settings(spec, options=options, prompt=prompt)
        check_same_settings(manifest, expected, where=folder)
        summaries.append(TaskSummary(task, prompt.id, manifest["rows"], 0, 0.0, folder, True))
    return summaries


class TaskCollection:
    """A request's tasks: those complete already and those to extract, texts recorded meanwhile.

    Creating it starts the recorder on the tasks whose texts are not cached; `split` then waits
    for every task's data (not its texts) and sorts the tasks. Both engines use it, importing
    their heavy libraries in between, while the recorder starts.
    """

    def __init__(self, request: ExtractRequest) -> None:
        self.request = request
        options = request.options
        self.known = recorded(request.tasks, options=options, splits=request.splits)
        names = [name for name, texts in self.known.items() if texts is None]
        self.recorder = TaskRecorder(
            names, cache_dir=options.cache_dir, data_dir=request.data_dir, splits=request.splits
        )

    def __enter__(self) -> TaskCollection:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.recorder.__exit__(*exc)

    def split(self) -> tuple[list[TaskSummary], list[TaskTexts]]:
        """(summaries of the (task, prompt) pairs already complete, the tasks to extract)."""
        request, options = self.request, self.request.options
        done: list[TaskSummary] = []
        todo: list[TaskTexts] = []
        for name in request.tasks:
            complete = None
            if request.splits is None and not options.overwrite:
                complete = _already_done(
                    request.spec, options=options, task=name, prompts=request.prompts
                )
            if complete is not None:
                done.extend(complete)
                continue
            per_split = self.known[name]
            if per_split is not None:
                merged = snapshots.merge_split_texts(per_split.values())
                todo.append(TaskTexts(name, list(per_split), _known(merged)))
            else:  # its data loaded by the recorder (fails here for a bad task), texts pending
                todo.append(TaskTexts(name, self.recorder.splits(name), self.recorder.texts(name)))
        return done, todo
