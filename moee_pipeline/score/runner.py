"""Where a run's units are scored: one `Runner` interface, chosen by engine in `RUNNERS`.

Every runner scores each unit with the same function (`unit.score_one`) and returns the rows per
unit; the driver (`run.run_score`) checks the extraction before, and gathers the rows in the
serial order and writes scores.csv once after. The serial runner is the one-worker case of the
local engine: the same units and unit function, in this process, one after another.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol

from moee_pipeline.quiet import quiet_libraries
from moee_pipeline.ray_cluster import require_ray
from moee_pipeline.score.config import ScoreConfig, ScoreError
from moee_pipeline.score.parallel import ProcessRunner, RayRunner
from moee_pipeline.score.plan import UnitKey
from moee_pipeline.score.rows import ScoreRow
from moee_pipeline.score.unit import Progress, TaskLoader, score_one
from moee_pipeline.vocabulary import Engine

__all__ = ["RUNNERS", "Runner", "SerialRunner", "runner_for"]


class Runner(Protocol):
    """Scores units; returns each unit's rows (any order: the driver orders them)."""

    def run(
        self, config: ScoreConfig, units: Sequence[UnitKey], progress: Progress
    ) -> Mapping[UnitKey, list[ScoreRow]]:
        """Score every unit of `units` under `config`, reporting to `progress`."""
        ...


@dataclass(frozen=True)
class SerialRunner:
    """Every unit in this process, one after another; progress per evaluation."""

    def run(
        self, config: ScoreConfig, units: Sequence[UnitKey], progress: Progress
    ) -> dict[UnitKey, list[ScoreRow]]:
        """Units of one task share its loaded data; each evaluation moves the bar."""
        tasks = TaskLoader(config)
        with quiet_libraries():  # once for the run: each library warning shows once
            return {key: score_one(config, key, tasks=tasks, progress=progress) for key in units}


def _local(config: ScoreConfig) -> Runner:
    """This machine: in this process for one worker, else that many spawned processes."""
    if config.ray_address:
        raise ScoreError("--ray-address needs --engine ray")
    if config.workers == 1:
        return SerialRunner()
    return ProcessRunner(workers=config.workers)


def _ray(config: ScoreConfig) -> Runner:
    """Ray tasks on a cluster (Ray is checked here, before anything runs)."""
    require_ray()
    return RayRunner(workers=config.workers, address=config.ray_address)


#: The one place an engine name becomes a way of running units.
RUNNERS: Mapping[Engine, Callable[[ScoreConfig], Runner]] = {"local": _local, "ray": _ray}


def runner_for(config: ScoreConfig) -> Runner:
    """The runner `config.engine` and `config.workers` ask for."""
    return RUNNERS[config.engine](config)
