"""`moee score`: evaluate cached features on MTEB for every requested combination, on a CPU.

The per-(task, prompt) work is `score/unit.py`; this drives it over every task and prompt,
serially here or on workers (`score/parallel.py`), and merges the rows into scores.csv once.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from tqdm.auto import tqdm

from moee_pipeline.cache import scores, store
from moee_pipeline.prompts import prompt_id
from moee_pipeline.quiet import quiet_libraries
from moee_pipeline.score.parallel import score_units
from moee_pipeline.score.summary import format_table
from moee_pipeline.score.unit import (
    ZSCORE_FITS,
    ScoreConfig,
    ScoreError,
    ScoreRow,
    Unit,
    combinations,
    feature_columns,
    resolve_tasks,
    score_unit,
)

__all__ = [
    "ZSCORE_FITS",
    "ScoreConfig",
    "ScoreError",
    "ScoreRow",
    "combinations",
    "format_table",
    "prompt_id",
    "run_score",
    "score_unit",
    "write_scores",
]


def run_score(config: ScoreConfig) -> list[ScoreRow]:
    """Score every (prompt, task, configuration); write scores.csv and mteb's JSON results."""
    from moee_pipeline.tasks import eval_splits, load_task

    combos = combinations(config)
    prompts = list(dict.fromkeys(prompt_id(p) for p in config.prompts))
    tasks = resolve_tasks(config, prompts)
    if config.workers > 1 or config.engine != "local":
        parallel = score_units(config, [(t, p) for t in tasks for p in prompts])
        write_scores(config.output / scores.SCORES_FILE, parallel)
        return parallel
    columns = feature_columns(combos)
    rows: list[ScoreRow] = []
    total = len(tasks) * len(prompts) * len(combos) * len(config.splits)
    with (
        quiet_libraries(),
        tqdm(total=total, desc="scoring", unit="eval", disable=not config.progress) as bar,
    ):
        for name in tasks:
            # read every prompt's cache first: a missing extraction fails before any evaluation
            features = {
                p: store.read_features(
                    config.cache_dir, model=config.model, prompt_id=p, task=name, columns=columns
                )
                for p in prompts
            }
            task = load_task(name, cache_dir=config.cache_dir, data_dir=config.data_dir)
            splits = tuple(eval_splits(task, config.splits))
            for p in prompts:
                unit = Unit(config, task, p, features.pop(p), splits)
                rows.extend(score_unit(unit, combos, bar=bar))
    write_scores(config.output / scores.SCORES_FILE, rows)
    return rows


def write_scores(path: Path, rows: Sequence[ScoreRow]) -> None:
    """Merge this run's rows into scores.csv (see `cache.scores.merge_rows`)."""
    scores.merge_rows(path, [r.as_csv() for r in rows])
