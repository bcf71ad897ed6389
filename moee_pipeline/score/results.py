"""mteb-native results: `<output>/mteb/` is a results folder mteb's own `ResultCache` reads.

Layout (mteb 2's): `<output>/mteb/results/<model name, / as __>/<revision>/experiments/
<experiment>/<Task>.json` beside a `model_meta.json`. Every configuration is one mteb experiment:
its `experiment_kwargs` hold the prompt, method, weight (or "auto"), feature options, z-score fit
and the features fingerprint, so mteb's tables and leaderboard tools tell our runs apart:

    mteb.ResultCache("results/mteb").load_results(load_experiments="match_name",
                                                    include_remote=False)

Each split is evaluated alone, so a task's file gathers the splits of one configuration.
"""

from __future__ import annotations

import logging
from pathlib import Path

from mteb import ResultCache
from mteb.models.model_meta import ModelMeta
from mteb.results import TaskResult

from moee_pipeline.cache import files

logger = logging.getLogger(__name__)

MTEB_FOLDER = "mteb"


def save_split_result(output: Path, meta: ModelMeta, result: TaskResult) -> Path:
    """Write one split's TaskResult into the experiment's file, keeping its other splits."""
    cache = ResultCache(output / MTEB_FOLDER)
    path = cache.get_task_result_path(task_name=result.task_name, model_name=meta)
    path.parent.mkdir(parents=True, exist_ok=True)
    with files.lock_for(path):  # concurrent runs into one --output merge their splits in turn
        _merge_and_save(cache, path, meta, result)
    return path


def _merge_and_save(cache: ResultCache, path: Path, meta: ModelMeta, result: TaskResult) -> None:
    """Read, merge and save under the caller's lock, so no other run's splits are lost."""
    if path.is_file():
        try:
            old = TaskResult.from_disk(path)
        except Exception:  # an unreadable file is replaced by this run's result
            logger.warning("replacing unreadable mteb result %s", path)
        else:
            merged = {k: v for k, v in old.scores.items() if k not in result.scores}
            result = result.model_copy(update={"scores": {**merged, **result.scores}})
    files.before_replace(path, path)  # mteb writes the file in place
    cache.save_to_cache(result, model_name=meta)
