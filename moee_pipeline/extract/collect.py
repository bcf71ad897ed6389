"""Which tasks a run still has to extract, and their texts: from the cache or the recorder.

Task data is loaded before any model, so a bad task name or data dir fails in seconds, not
after a multi-minute model load. A task whose texts were recorded before (a second model,
prompt or rerun) is read from its snapshot without mteb or datasets.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from moee_pipeline.cache import completeness, layout, snapshots, sources, staging, store
from moee_pipeline.extract.jobs import EntryJob, task_jobs, task_text_sides, two_templates
from moee_pipeline.extract.recorder import TaskRecorder
from moee_pipeline.extract.request import ExtractRequest
from moee_pipeline.extract.reuse import check_same_settings, expected_settings, extends_hs
from moee_pipeline.extract.settings import ExtractOptions, TaskSummary
from moee_pipeline.models.spec import ModelSpec
from moee_pipeline.sides import held_sides, merge_sides, texts_of_sides


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


def entry_jobs(request: ExtractRequest, item: TaskTexts) -> list[EntryJob]:
    """The entries a task's extraction makes (extract/jobs.py); the texts' recorded sides are
    read (once its texts are recorded: they are kept beside them) only where the two sides'
    templates differ."""
    query, document = request.query_prompt, request.document_prompt
    sides = None
    if two_templates(request.prompts, query, document):
        item.pending.result()
        sides = task_text_sides(item.name, item.splits, cache_dir=request.options.cache_dir)
    return task_jobs(item.name, request.prompts, query=query, document=document, text_sides=sides)


def _known(texts: list[str]) -> Future[list[str]]:
    done: Future[list[str]] = Future()
    done.set_result(texts)
    return done


def recorded(
    tasks: Sequence[str],
    *,
    options: ExtractOptions,
    splits: Sequence[str] | None = None,
    data_dir: Path | None = None,
) -> dict[str, dict[str, list[str]] | None]:
    """Each task's recorded texts by split, read once; None where the recorder must run.

    Chosen splits (`splits`) are always recorded: the snapshot's lists cover its own splits.
    A task whose data the data dir holds in other files than its snapshot was made from goes
    through the recorder too, which loads them and refuses other data than the snapshot's.
    """
    if splits is not None:
        return dict.fromkeys(tasks)
    cache_dir = options.cache_dir
    return {
        n: None
        if data_dir is not None and not _data_dir_known(n, data_dir, cache_dir)
        else snapshots.recorded_task_texts(n, cache_dir=cache_dir)
        for n in tasks
    }


def _data_dir_known(name: str, data_dir: Path, cache_dir: Path) -> bool:
    """Whether the data dir names nothing for the task, or exactly its snapshot's files."""
    if not data_dir.is_dir():
        return False  # the recorder says what is wrong with it
    if not (data_dir / name).is_dir():
        return True
    return sources.same_source(name, data_dir, cache_dir=cache_dir)


def _already_done(
    spec: ModelSpec,
    *,
    options: ExtractOptions,
    task: str,
    jobs: Callable[[], list[EntryJob]],
    texts: Callable[[], list[str]],
) -> list[TaskSummary] | None:
    """Summaries when every entry of a task (`jobs`) is complete with these settings, else None.

    Complete means a manifest made with these settings, holding the job's side (or every
    text), and every one of its texts (asked for only once every manifest is found) in its
    parts: an entry that lost a part with its manifest record is extracted again, not
    reported complete. What a killed overwrite left is finished or removed first. Settings
    that need the model (revision) are checked again by `extract_task`.
    """
    summaries, wanted = [], []
    for job in jobs():
        key = layout.EntryKey.of(model=spec.model, prompt_id=job.prompt.id, task=task)
        folder = key.path(options.cache_dir)
        staging.recover(options.cache_dir, key)
        manifest = store.read_manifest(folder)
        if manifest is None:
            return None
        expected = expected_settings(spec, options=options, prompt=job.prompt)
        check_same_settings(manifest, expected, where=folder)
        if extends_hs(manifest, options, where=folder, complete=True):
            return None
        held = held_sides(manifest)
        if merge_sides(held, job.sides) != held:  # holds the other side only
            return None
        summaries.append(TaskSummary(task, job.prompt.id, manifest["rows"], 0, 0.0, folder, True))
        wanted.append(job)
    every = texts()
    for summary, job in zip(summaries, wanted, strict=True):
        if completeness.lacking(
            summary.path, texts_of_sides(every, job.text_sides or {}, job.sides)
        ):
            return None
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
        self.known = recorded(
            request.tasks, options=options, splits=request.splits, data_dir=request.data_dir
        )
        names = [name for name, texts in self.known.items() if texts is None]
        self.recorder = TaskRecorder(
            names, cache_dir=options.cache_dir, data_dir=request.data_dir, splits=request.splits
        )
        self._jobs: dict[str, list[EntryJob]] = {}

    def jobs(self, item: TaskTexts) -> list[EntryJob]:
        """The entries a task makes (`entry_jobs`), worked out once per run."""
        if item.name not in self._jobs:
            self._jobs[item.name] = entry_jobs(self.request, item)
        return self._jobs[item.name]

    def __enter__(self) -> TaskCollection:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.recorder.__exit__(*exc)

    def split(self) -> tuple[list[TaskSummary], list[TaskTexts]]:
        """(summaries of the (task, prompt) pairs already complete, the tasks to extract).

        A complete task whose texts are not recorded (its snapshot was removed) waits for the
        recorder, which writes the snapshot and its lists again: scoring needs them.
        """
        request, options = self.request, self.request.options
        done: list[TaskSummary] = []
        todo: list[TaskTexts] = []
        for name in request.tasks:
            item = _LazyTask(name, self.known[name], self.recorder)
            complete = None
            if request.splits is None and not options.overwrite:
                complete = _already_done(
                    request.spec,
                    options=options,
                    task=name,
                    jobs=functools.partial(lambda lazy: self.jobs(lazy.get()), item),
                    texts=item.texts,
                )
            if complete is not None:
                done.extend(complete)
            else:  # its data loaded by the recorder (fails here for a bad task), texts pending
                todo.append(item.get())
        return done, todo


class _LazyTask:
    """A task's splits and texts, made when first asked for: a task the recorder loads has its
    splits once its data is loaded, its texts once recorded."""

    def __init__(
        self, name: str, known: dict[str, list[str]] | None, recorder: TaskRecorder
    ) -> None:
        self.name, self.known, self.recorder = name, known, recorder
        self._made: TaskTexts | None = None

    def get(self) -> TaskTexts:
        if self._made is None:
            if self.known is not None:
                merged = snapshots.merge_split_texts(self.known.values())
                self._made = TaskTexts(self.name, list(self.known), _known(merged))
            else:
                splits = self.recorder.splits(self.name)
                self._made = TaskTexts(self.name, splits, self.recorder.texts(self.name))
        return self._made

    def texts(self) -> list[str]:
        return self.get().texts
