"""The local engine: a request's (task, prompt) pairs through one model load in this process.

The texts of tasks not yet recorded are recorded first: in a child process started before
torch and transformers are imported here, so recording, imports and the model load overlap (or
on a thread, where this process has imported them all already; see extract/recorder.py).
`run_extract` is the same run called with plain arguments (the public entry point).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from moee_pipeline.extract.collect import TaskCollection
from moee_pipeline.extract.progress import RunBar
from moee_pipeline.extract.request import ExtractRequest
from moee_pipeline.extract.settings import ExtractOptions, TaskSummary, check_max_length
from moee_pipeline.models.spec import ModelSpec
from moee_pipeline.prompts import Prompt


@dataclass(frozen=True)
class LocalEngine:
    """Extracts in this process, on the device the request's model spec names."""

    def run(self, request: ExtractRequest) -> Iterator[TaskSummary]:
        """Extract every (task, prompt), loading the model once; yields a summary per pair.

        Every task's data is loaded (by the recorder) before the model loads; a task's texts
        are waited for only when its turn comes. A --max-length beyond the model's positions
        is refused from its config, before the model loads.
        """
        with TaskCollection(request) as collection:
            # imported here, while the recorder starts: these imports take seconds
            from moee_pipeline.extract.pipeline import extract_task
            from moee_pipeline.models.loading import load_config, load_model

            done, todo = collection.split()
            yield from done
            if not todo:
                return
            spec = request.spec
            check_max_length(request.options.max_length, load_config(spec), model=spec.model)
            loaded = load_model(spec)
            with RunBar(enabled=request.options.progress) as bar:  # the run's one bar
                for item in todo:
                    for job in collection.jobs(item):
                        yield extract_task(
                            loaded,
                            task=item.name,
                            texts=item.texts,
                            prompt=job.prompt,
                            options=request.options,
                            model_id=request.spec.model,
                            splits=item.splits,
                            job=job,
                            bar=bar,
                        )


def run_extract(
    spec: ModelSpec,
    *,
    tasks: Sequence[str],
    prompts: Sequence[Prompt],
    options: ExtractOptions | None = None,
    data_dir: Path | None = None,
    splits: Sequence[str] | None = None,
    query_prompt: Prompt | None = None,
    document_prompt: Prompt | None = None,
) -> Iterator[TaskSummary]:
    """Extract every (task, prompt) locally, loading the model once; yields a summary per pair.

    The local engine's run of the `ExtractRequest` of the same arguments; `options` defaults to
    `ExtractOptions()` (cache in $MOEE_CACHE_DIR or ./cache).
    """
    request = ExtractRequest(
        spec,
        tasks,
        prompts,
        options or ExtractOptions(),
        data_dir,
        splits,
        query_prompt=query_prompt,
        document_prompt=document_prompt,
    )
    return LocalEngine().run(request)
