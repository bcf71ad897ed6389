"""What an extraction is asked to do, and the engines that do it: one request, one interface, and
the one place an engine is chosen by name.

An `ExtractRequest` (frozen, request.py; re-exported here) holds everything a run needs: the
model, tasks, prompts, options, data dir and splits. An engine (`ExtractEngine`) runs it and
yields one `TaskSummary` per (task, prompt), each engine with the same resume logic, part
writer and manifests (collect.py, entries.py), so the cache they write is the same.
`engine_named` maps the `--engine` names to them: `local` (extract/run.py, this process) and
`ray` (extract/ray_engine.py, a pool of Ray actors), importing each only when asked for, so
choosing the local engine never imports Ray's code path and choosing Ray checks its address
before the engine's heavy imports.

Torch-free, like the request: the CLI chooses the engine before the model's libraries load.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from typing import Protocol

from moee_pipeline.extract.request import ExtractRequest, RayOptions
from moee_pipeline.extract.settings import ExtractionError, TaskSummary
from moee_pipeline.ray_cluster import check_address
from moee_pipeline.vocabulary import Engine

__all__ = ["ENGINE_FACTORIES", "ExtractEngine", "ExtractRequest", "RayOptions", "engine_named"]


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
