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
import shutil
from pathlib import Path

from mteb import ResultCache
from mteb.models.model_meta import ModelMeta
from mteb.results import TaskResult

from moee_pipeline.cache import files
from moee_pipeline.errors import first_line
from moee_pipeline.score.config import ScoreError

logger = logging.getLogger(__name__)

MTEB_FOLDER = "mteb"
#: The file mteb merges each run's settings into, beside the result files.
RUN_SETTINGS = "run_settings.jsonl"


def save_split_result(output: Path, meta: ModelMeta, result: TaskResult) -> Path:
    """Write one split's TaskResult into the experiment's file, keeping its other splits."""
    cache = ResultCache(output / MTEB_FOLDER)
    path = cache.get_task_result_path(task_name=result.task_name, model_name=meta)
    path.parent.mkdir(parents=True, exist_ok=True)
    with files.lock_for(path):  # concurrent runs into one --output merge their splits in turn
        _merge_and_save(cache, path, meta, result)
    return path


def _merge_and_save(cache: ResultCache, path: Path, meta: ModelMeta, result: TaskResult) -> None:
    """Read, merge and save under the caller's lock, so no other run's splits are lost.

    mteb's `save_to_cache` writes its files in place (a full disk leaves a 0-byte file), so it
    writes them into a staging folder beside `results/` here, and each file is then replaced
    atomically, as every file the package stores is: a reader sees the old file or the new one.
    """
    if path.is_file():
        try:
            old = TaskResult.from_disk(path)
        except Exception as error:  # not ours to replace: it holds other runs' splits
            logger.info("reading %s: %s", path, error)
            raise ScoreError(
                f"{path} cannot be read as an mteb result ({first_line(error, limit=60)}):"
                " move it away, then rerun"
            ) from None
        merged = {k: v for k, v in old.scores.items() if k not in result.scores}
        result = result.model_copy(update={"scores": {**merged, **result.scores}})
    for folder in (cache.cache_path, path.parent):  # a killed run's staging folder and temps
        files.remove_stale_temps(folder)
    with files.atomic_dir(cache.cache_path / "staging") as staging:
        stage = ResultCache(staging)
        staged = stage.get_task_result_path(task_name=result.task_name, model_name=meta)
        staged.parent.mkdir(parents=True, exist_ok=True)
        if (path.parent / RUN_SETTINGS).is_file():  # mteb merges this run's settings into it
            shutil.copyfile(path.parent / RUN_SETTINGS, staged.parent / RUN_SETTINGS)
        stage.save_to_cache(result, model_name=meta)
        # the result file last: whoever sees it finds its model_meta.json beside it
        for written in sorted(staged.parent.iterdir(), key=lambda f: f.name == staged.name):
            with files.atomic_path(path.parent / written.name) as tmp:
                shutil.copyfile(written, tmp)
