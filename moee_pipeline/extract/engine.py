"""What an extraction is asked to do, and the engines that do it: one request, one interface, and
the one place an engine is chosen by name.

An `ExtractRequest` (frozen) holds everything a run needs: the model, tasks, prompts, options,
data dir and splits. An engine (`ExtractEngine`) runs it and yields one `TaskSummary` per
(task, prompt), each engine with the same resume logic, part writer and manifests (collect.py,
entries.py), so the cache they write is the same. `engine_named` maps the `--engine` names to
them: `local` (extract/run.py, this process) and `ray` (extract/ray_engine.py, a pool of Ray
actors), importing each only when asked for, so choosing the local engine never imports Ray's
code path and choosing Ray checks its address before the engine's heavy imports.

Torch-free: the CLI builds the request before the model's libraries load.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from moee_pipeline.extract.settings import ExtractionError, ExtractOptions, TaskSummary
from moee_pipeline.models.spec import ModelSpec
from moee_pipeline.prompts import Prompt
from moee_pipeline.ray_cluster import check_address
from moee_pipeline.vocabulary import Engine


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


class ExtractEngine(Protocol):
    """Runs a request; yields a summary per (task, prompt) as each is done or found complete."""

    def run(self, request: ExtractRequest) -> Iterator[TaskSummary]:
        """Extract what the request asks for that the cache does not hold yet."""
        ...


def _local(ray: RayOptions) -> ExtractEngine:
    if ray != RayOptions():
        raise ExtractionError("--workers, --gpus-per-worker and --ray-address need --engine ray")
    from moee_pipeline.extract.run import LocalEngine

    return LocalEngine()


def _ray(ray: RayOptions) -> ExtractEngine:
    check_address(ray.address)  # an unreachable address fails in seconds, before the imports
    from moee_pipeline.extract.ray_engine import RayEngine

    return RayEngine(ray)


#: Each name `--engine` takes (vocabulary.ENGINES) and how its engine is made.
ENGINE_FACTORIES: Mapping[Engine, Callable[[RayOptions], ExtractEngine]] = {
    "local": _local,
    "ray": _ray,
}


def engine_named(name: Engine, ray: RayOptions | None = None) -> ExtractEngine:
    """The engine called `name`; `ray` configures the Ray engine (the local one takes none).

    Raises:
        ExtractionError: Ray options given to the local engine.
        RayClusterError: an explicit Ray address nothing listens on.
    """
    return ENGINE_FACTORIES[name](ray if ray is not None else RayOptions())
