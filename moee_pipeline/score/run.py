"""`moee score`: evaluate cached features on MTEB for every requested combination, on a CPU.

One path for every engine: plan the (task, prompt) units and check they were extracted
(`score/plan.py`), score them with the runner the config asks for (`score/runner.py`, each unit
by `unit.score_one`), gather the rows in the serial order and merge them into scores.csv once.

A score that is not a number (mteb's correlation over constant gold scores, or over identical
texts) is an error of its task, never a row: the other tasks' rows are written, and the run
then raises `UnscoredTasksError`, one line per such task. The run goes on past such a task
because the cause is the task's data, which no rerun changes: stopping would only withhold
the other tasks' valid scores.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tqdm.auto import tqdm

from moee_pipeline.cache import scores
from moee_pipeline.cache.skipped import merge_skipped
from moee_pipeline.score.config import ScoreConfig, ScoreError
from moee_pipeline.score.plan import check_extracted, plan_units
from moee_pipeline.score.rows import ScoreRow
from moee_pipeline.score.runner import runner_for
from moee_pipeline.score.sweep import combinations

__all__ = ["UnscoredTasksError", "run_score", "write_scores"]


class UnscoredTasksError(ScoreError):
    """Some tasks have no score (it is not a number); the rest were written.

    `lines` holds one line per such task (task, metric, splits, why, what to do); `rows` the
    rows that were scored and written.
    """

    def __init__(self, lines: Sequence[str], rows: Sequence[ScoreRow]) -> None:
        super().__init__("\n".join(lines))
        self.lines = tuple(lines)
        self.rows = list(rows)


@dataclass(frozen=True)
class _Bar:
    """The run's one progress bar, as the units and runners report to it (`unit.Progress`)."""

    bar: Any  # tqdm

    def evaluating(self, what: str) -> None:
        self.bar.set_postfix_str(what, refresh=False)

    def evaluated(self, count: int = 1) -> None:
        self.bar.update(count)


def run_score(config: ScoreConfig) -> list[ScoreRow]:
    """Score every (prompt, task, configuration); write scores.csv and mteb's JSON results.

    Nothing is evaluated when a unit was never extracted, the engine cannot run or the output's
    scores.csv cannot be merged into (one error naming what to do), and scores.csv is written
    only when every unit has been scored. Tasks whose score is not a number raise
    `UnscoredTasksError` after the other rows are written.
    """
    path = config.output / scores.SCORES_FILE
    units = plan_units(config)
    runner = runner_for(config)
    check_extracted(config, units)
    scores.read_rows(path)  # a file that cannot be merged into is refused before any evaluation
    total = len(units) * len(combinations(config)) * len(config.splits)
    with tqdm(total=total, desc="scoring", unit="eval", disable=not config.progress) as bar:
        by_unit = runner.run(config, units, _Bar(bar))
    rows = [row for unit in units for row in by_unit[unit]]
    scored = [row for row in rows if math.isfinite(row.score.main_score)]
    if scored:
        write_scores(path, scored)
        merge_skipped(config.output, dict(config.skipped))
    if len(scored) < len(rows):
        raise UnscoredTasksError(_unscored_lines(rows), scored)
    return scored


def _unscored_lines(rows: Sequence[ScoreRow]) -> list[str]:
    """One line per task with a score that is not a number: how many, which splits, why."""
    by_task: dict[str, list[ScoreRow]] = {}
    for row in rows:
        by_task.setdefault(row.score.task, []).append(row)
    lines = []
    for task, mine in by_task.items():
        bad = [r for r in mine if not math.isfinite(r.score.main_score)]
        if not bad:
            continue
        splits = ",".join(dict.fromkeys(r.score.split for r in bad))
        lines.append(
            f"{task} ({splits}): its {bad[0].score.main_metric} is not a number in {len(bad)} of"
            f" {len(mine)} evaluation(s), as a correlation over constant gold scores or identical"
            " texts is; no row written: check the task's data"
        )
    return lines


def write_scores(path: Path, rows: Sequence[ScoreRow]) -> None:
    """Merge this run's rows into scores.csv (see `cache.scores.merge_rows`)."""
    scores.merge_rows(path, [r.as_csv() for r in rows])
