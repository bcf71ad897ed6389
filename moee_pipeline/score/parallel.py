"""`moee score --workers N` and `--engine ray`: (task, prompt) units scored in parallel.

A unit reads one task's cached features under one prompt and evaluates every configuration,
exactly as the serial run does (`score_unit`), in its own process: N local processes
(`--engine local`) or Ray tasks on a cluster (`--engine ray`; every node must see the cache
and the output folder). Units write only mteb's results (one file per task and
experiment); the driver gathers the rows in the serial order and writes scores.csv once.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_EXCEPTION, Future, ProcessPoolExecutor, wait
from dataclasses import replace
from typing import Any

from tqdm.auto import tqdm

from moee_pipeline.score.unit import ScoreConfig, ScoreRow, combinations, feature_columns

logger = logging.getLogger(__name__)

UnitKey = tuple[str, str]  # (task, prompt id)


def score_unit_key(config: ScoreConfig, key: UnitKey) -> list[ScoreRow]:
    """Every configuration of one (task, prompt), in whichever process runs it.

    Reads and loads what the serial run would for this pair, then scores it with the serial
    run's own `score_unit`.
    """
    from moee_pipeline.cache import store
    from moee_pipeline.quiet import quiet_libraries
    from moee_pipeline.score.unit import Unit, score_unit
    from moee_pipeline.tasks import eval_splits, load_task

    name, prompt = key
    combos = combinations(config)
    features = store.read_features(
        config.cache_dir,
        model=config.model,
        prompt_id=prompt,
        task=name,
        columns=feature_columns(combos),
    )
    with quiet_libraries():
        task = load_task(name, cache_dir=config.cache_dir, data_dir=config.data_dir)
        splits = tuple(eval_splits(task, config.splits))
        return score_unit(Unit(config, task, prompt, features, splits), combos)


def _check_extracted(config: ScoreConfig, units: Sequence[UnitKey]) -> None:
    """Fail before any worker starts when a unit was never extracted, as the serial run does."""
    from moee_pipeline.cache import layout, store

    for name, prompt in units:
        where = layout.task_dir(config.cache_dir, model=config.model, prompt_id=prompt, task=name)
        if store.read_manifest(where) is None:  # reading it raises the error that says what to run
            store.read_features(config.cache_dir, model=config.model, prompt_id=prompt, task=name)


def _limit_threads(threads: int) -> None:
    """Each worker process gets its share of the cores, so N workers do not oversubscribe."""
    from threadpoolctl import threadpool_limits

    threadpool_limits(threads)


def score_units(config: ScoreConfig, units: Sequence[UnitKey]) -> list[ScoreRow]:
    """Score `units` on `config.workers` processes or Ray tasks; rows in the serial order."""
    if config.engine == "ray":
        from moee_pipeline.ray_cluster import require_ray

        require_ray()
    _check_extracted(config, units)
    worker_config = replace(config, progress=False, workers=1, engine="local")
    runner = _score_on_ray if config.engine == "ray" else _score_on_processes
    per_unit = len(combinations(config)) * len(config.splits)
    with tqdm(
        total=len(units) * per_unit, desc="scoring", unit="eval", disable=not config.progress
    ) as bar:
        results = runner(worker_config, units, config, lambda: bar.update(per_unit))
    return [row for unit in units for row in results[unit]]


def _score_on_processes(
    worker_config: ScoreConfig,
    units: Sequence[UnitKey],
    config: ScoreConfig,
    done: Callable[[], None],
) -> dict[UnitKey, list[ScoreRow]]:
    """N spawned processes (never forked: the driver holds threads and library state)."""
    threads = max(1, (os.cpu_count() or 1) // config.workers)
    results: dict[UnitKey, list[ScoreRow]] = {}
    with ProcessPoolExecutor(
        max_workers=config.workers,
        mp_context=multiprocessing.get_context("spawn"),
        initializer=_limit_threads,
        initargs=(threads,),
    ) as pool:
        futures: dict[Future[list[ScoreRow]], UnitKey] = {
            pool.submit(score_unit_key, worker_config, unit): unit for unit in units
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
                results[futures[future]] = future.result()
                done()
    return results


def _score_on_ray(
    worker_config: ScoreConfig,
    units: Sequence[UnitKey],
    config: ScoreConfig,
    done: Callable[[], None],
) -> dict[UnitKey, list[ScoreRow]]:
    """One Ray task per unit (one CPU each): `--workers` at once, or with 1 as many as fit."""
    from moee_pipeline.ray_cluster import moee_cause, ray_session

    with ray_session(config.ray_address) as ray:
        remote = ray.remote(num_cpus=1, max_retries=2)(score_unit_key)
        at_once = config.workers if config.workers > 1 else len(units)
        queue = list(units)
        running: dict[Any, UnitKey] = {}
        results: dict[UnitKey, list[ScoreRow]] = {}
        try:
            while queue or running:
                while queue and len(running) < at_once:
                    unit = queue.pop(0)
                    running[remote.remote(worker_config, unit)] = unit
                ready, _ = ray.wait(list(running), num_returns=1)
                for ref in ready:
                    results[running.pop(ref)] = ray.get(ref)
                    done()
        except Exception as error:
            for ref in running:
                ray.cancel(ref)
            cause = moee_cause(error)
            if cause is not None and cause is not error:
                raise cause from None
            raise
    return results
