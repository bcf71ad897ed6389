"""`run_extract`: the local engine's driver, from task names to one summary per (task, prompt).

The texts of tasks not yet recorded are recorded first: in a child process started before
torch and transformers are imported here, so recording, imports and the model load overlap (or
on a thread, where this process has imported them all already; see extract/recorder.py).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path

from moee_pipeline.extract.collect import TaskCollection
from moee_pipeline.extract.settings import ExtractOptions, TaskSummary
from moee_pipeline.models.spec import ModelSpec
from moee_pipeline.prompts import Prompt


def run_extract(
    spec: ModelSpec,
    *,
    tasks: Sequence[str],
    prompts: Sequence[Prompt],
    options: ExtractOptions,
    data_dir: Path | None = None,
    splits: Sequence[str] | None = None,
) -> Iterator[TaskSummary]:
    """Extract every (task, prompt), loading the model once; yields a summary per pair.

    Every task's data is loaded (by the recorder) before the model loads; a task's texts are
    waited for only when its turn comes.
    """
    with TaskCollection(tasks, options=options, data_dir=data_dir, splits=splits) as collection:
        # imported here, while the recorder starts: these imports take seconds
        from moee_pipeline.extract.pipeline import extract_task
        from moee_pipeline.models.loading import load_model

        done, todo = collection.split(spec, prompts)
        yield from done
        if not todo:
            return
        loaded = load_model(spec)
        for item in todo:
            for prompt in prompts:
                yield extract_task(
                    loaded,
                    task=item.name,
                    texts=item.texts,
                    prompt=prompt,
                    options=options,
                    model_id=spec.model,
                    splits=item.splits,
                )
