"""The runners that hand units to other processes: `--workers N` and `--engine ray`.

Each unit runs `score_one`, exactly as the serial run does, in a spawned local process
(`ProcessRunner`) or a Ray task on a cluster (`RayRunner`; every node must see the cache and the
output folder). Units write only mteb's results (one file per task and experiment); the driver
moves the bar per finished unit, gathers the rows in the serial order and writes scores.csv once.
The first error stops the rest and is raised as the worker raised it.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
from collections.abc import Sequence
from concurrent.futures import FIRST_EXCEPTION, Future, ProcessPoolExecutor, wait
from dataclasses import dataclass
from typing import Any

from moee_pipeline.score.config import ScoreConfig
from moee_pipeline.score.plan import UnitKey
from moee_pipeline.score.rows import ScoreRow
from moee_pipeline.score.unit import Progress, score_one

__all__ = ["ProcessRunner", "RayRunner"]

logger = logging.getLogger(__name__)


def _limit_threads(threads: int) -> None:
    """Each worker process gets its share of the cores, so N workers do not oversubscribe."""
    from threadpoolctl import threadpool_limits

    threadpool_limits(threads)


@dataclass(frozen=True)
class ProcessRunner:
    """`workers` spawned processes (never forked: the driver holds threads and library state)."""

    workers: int

    def run(
        self, config: ScoreConfig, units: Sequence[UnitKey], progress: Progress
    ) -> dict[UnitKey, list[ScoreRow]]:
        """One unit per task of the pool; the first failure cancels what has not started."""
        threads = max(1, (os.cpu_count() or 1) // self.workers)
        results: dict[UnitKey, list[ScoreRow]] = {}
        with ProcessPoolExecutor(
            max_workers=self.workers,
            mp_context=multiprocessing.get_context("spawn"),
            initializer=_limit_threads,
            initargs=(threads,),
        ) as pool:
            futures: dict[Future[list[ScoreRow]], UnitKey] = {
                pool.submit(score_one, config, unit): unit for unit in units
            }
            pending = set(futures)
            while pending:
                finished, pending = wait(pending, return_when=FIRST_EXCEPTION)
                for future in finished:
                    error = future.exception()
                    if error is not None:
                        for other in pending:
                            other.cancel()
                        raise error
                    results[futures[future]] = rows = future.result()
                    progress.evaluated(len(rows))
        return results


@dataclass(frozen=True)
class RayRunner:
    """One Ray task per unit (one CPU each): `workers` at once, or with 1 as many as fit."""

    workers: int
    address: str | None = None

    def run(
        self, config: ScoreConfig, units: Sequence[UnitKey], progress: Progress
    ) -> dict[UnitKey, list[ScoreRow]]:
        """A user-fixable error a task raised comes back as itself, not as Ray's wrapper."""
        from moee_pipeline.ray_cluster import moee_cause, ray_session

        with ray_session(self.address) as ray:
            remote = ray.remote(num_cpus=1, max_retries=2)(score_one)
            at_once = self.workers if self.workers > 1 else len(units)
            queue = list(units)
            running: dict[Any, UnitKey] = {}
            results: dict[UnitKey, list[ScoreRow]] = {}
            try:
                while queue or running:
                    while queue and len(running) < at_once:
                        unit = queue.pop(0)
                        running[remote.remote(config, unit)] = unit
                    ready, _ = ray.wait(list(running), num_returns=1)
                    for ref in ready:
                        results[running.pop(ref)] = rows = ray.get(ref)
                        progress.evaluated(len(rows))
            except Exception as error:
                for ref in running:
                    ray.cancel(ref)
                cause = moee_cause(error)
                if cause is not None and cause is not error:
                    raise cause from None
                raise
        return results
