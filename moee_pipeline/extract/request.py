"""What an extraction is asked to do: the one frozen request every engine runs.

Its own module, below the engines and the code they share (collect.py, run.py, ray_engine.py),
so that choosing an engine by name (engine.py) imports each engine without any of them
importing back. Torch-free: the CLI builds the request before the model's libraries load.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from moee_pipeline.extract.settings import ExtractOptions
from moee_pipeline.models.spec import ModelSpec
from moee_pipeline.prompts import Prompt


@dataclass(frozen=True)
class ExtractRequest:
    """One extraction: every (task, prompt) of `tasks` x `prompts` with one model load.

    `data_dir` reads mteb's tasks from `<data_dir>/<Task>/<split>.parquet` instead of the Hub;
    `splits` covers other evaluation splits than each task's own (None: the task's own);
    `query_prompt`/`document_prompt` give a retrieval task's sides their own templates, each
    defaulting to the one prompt of `prompts` (extract/jobs.py).
    """

    spec: ModelSpec
    tasks: Sequence[str]
    prompts: Sequence[Prompt]
    options: ExtractOptions = field(default_factory=ExtractOptions)
    data_dir: Path | None = None
    splits: Sequence[str] | None = None
    query_prompt: Prompt | None = None
    document_prompt: Prompt | None = None

    def __post_init__(self) -> None:
        """Hold tuples whatever sequences were given, so a request never changes once made;
        refuse side prompts beside several prompts."""
        from moee_pipeline.extract.jobs import two_templates

        two_templates(self.prompts, self.query_prompt, self.document_prompt)
        object.__setattr__(self, "tasks", tuple(self.tasks))
        object.__setattr__(self, "prompts", tuple(self.prompts))
        if self.splits is not None:
            object.__setattr__(self, "splits", tuple(self.splits))
        if self.data_dir is not None:
            object.__setattr__(self, "data_dir", Path(self.data_dir))


@dataclass(frozen=True)
class RayOptions:
    """Where and on how many actors `--engine ray` runs the forward passes."""

    workers: int = 1
    gpus_per_worker: float | None = None  # None: 1 on a cluster with GPUs, else 0
    cpus_per_worker: float = 1.0
    address: str | None = None  # None: start a local instance; "auto" or "ray://host:10001"
    block_rows: int | None = None  # texts per Ray block; None: 4 x --batch-size
