"""`moee score`: evaluate cached features on MTEB for every requested combination, on a CPU.

One path for every engine: plan the (task, prompt) units and check they were extracted
(`score/plan.py`), score them with the runner the config asks for (`score/runner.py`, each unit
by `unit.score_one`), gather the rows in the serial order and merge them into scores.csv once.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tqdm.auto import tqdm

from moee_pipeline.cache import scores
from moee_pipeline.score.config import ScoreConfig
from moee_pipeline.score.plan import check_extracted, plan_units
from moee_pipeline.score.rows import ScoreRow
from moee_pipeline.score.runner import runner_for
from moee_pipeline.score.sweep import combinations

__all__ = ["run_score", "write_scores"]


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

    Nothing is evaluated when a unit was never extracted or the engine cannot run (one error
    naming what to do), and scores.csv is written only when every unit has been scored.
    """
    units = plan_units(config)
    runner = runner_for(config)
    check_extracted(config, units)
    total = len(units) * len(combinations(config)) * len(config.splits)
    with tqdm(total=total, desc="scoring", unit="eval", disable=not config.progress) as bar:
        by_unit = runner.run(config, units, _Bar(bar))
    rows = [row for unit in units for row in by_unit[unit]]
    write_scores(config.output / scores.SCORES_FILE, rows)
    return rows


def write_scores(path: Path, rows: Sequence[ScoreRow]) -> None:
    """Merge this run's rows into scores.csv (see `cache.scores.merge_rows`)."""
    scores.merge_rows(path, [r.as_csv() for r in rows])
