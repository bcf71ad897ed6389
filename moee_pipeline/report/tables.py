"""`moee report`: the paper's tables (Tables 3-4 per task type; per task) from scores.csv.

Rows of scores.csv are (configuration, provenance, task, split) with main_score in 0-1; tables show
x100 with two decimals. Rows of different provenance (quantization, dtype, revision, max length,
features, z-score fit) are kept apart. A task-type average covers the tasks of that type that were
scored for the row; it is marked with a dagger whenever that is fewer than the type's tasks (the
paper's 19 tasks plus any other task of the type found in scores.csv), and the notes name them.
The Average is the paper's: the mean of its six task types' means (`vocabulary.paper_average`).
Models are named by their slug, as the cache and `moee ls` name them. Which MoEE-sum weight a row
shows is weight_rules.py's.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from moee_pipeline.cache.layout import model_slug
from moee_pipeline.cache.scores import PROVENANCE_COLUMNS, SCORE_COLUMNS, SCORES_FILE, read_rows
from moee_pipeline.report.options import ReportError
from moee_pipeline.report.paper import AVERAGE, load_paper, paper_task_order
from moee_pipeline.vocabulary import (
    METHODS,
    TASK_TYPES,
    paper_average,
    task_type_means,
    type_rank,
)

logger = logging.getLogger(__name__)

_CONFIG = ["model", "prompt", "method", "rw", "zscore", "pooling", "layers"]
GROUP_KEY = [*_CONFIG, *PROVENANCE_COLUMNS]
ROW_KEY = [*_CONFIG[:3], "weight_label", *_CONFIG[3:], *PROVENANCE_COLUMNS]
ORACLE = "oracle"
DAGGER = "†"
#: Columns added after the first release: files without them read as empty (unknown provenance).
LATER_COLUMNS = ("weight_rule", *PROVENANCE_COLUMNS)


@dataclass(frozen=True)
class TypeTable:
    """Per-row task-type means (x100), the tasks each covers and what the type should cover."""

    values: pd.DataFrame
    covered: dict[tuple[tuple[str, ...], str], tuple[str, ...]]
    expected: dict[str, tuple[str, ...]]
    notes: list[str] = field(default_factory=list)


def with_later_columns(scores: pd.DataFrame) -> pd.DataFrame:
    """The frame with the columns older files lack added empty (unknown provenance)."""
    missing = {c: "" for c in LATER_COLUMNS if c not in scores.columns}
    return scores.assign(**missing) if missing else scores


def load_scores(path: Path) -> pd.DataFrame:
    """Read `<results>/scores.csv` (or the file itself), every row checked (`cache.scores`).

    Files written before the provenance columns existed are read with them empty, so their rows
    stay apart from rows of known provenance. Models are named by slug: older files recorded the
    model as the user named it (a local path, a Hub id).
    """
    path = Path(path)
    file = path / SCORES_FILE if path.is_dir() else path
    if not file.is_file():
        raise ReportError(f"no scores at {file}: run `moee score --output {path}` first")
    rows = read_rows(file)  # every row checked as `moee score` checks it before merging
    if not rows:
        raise ReportError(f"{file} holds no scores: run `moee score --output {path}` first")
    scores = with_later_columns(pd.DataFrame(rows, dtype=str))
    missing = [c for c in SCORE_COLUMNS if c not in scores.columns]
    if missing:
        raise ReportError(
            f"{file} lacks column(s) {', '.join(missing)}: point --results at what `moee score` "
            "wrote"
        )
    scores["model"] = scores["model"].map(model_slug)
    scores["weight"] = pd.to_numeric(scores["weight"].where(scores["weight"] != ""))
    scores["main_score"] = pd.to_numeric(scores["main_score"])
    key = [*GROUP_KEY, "weight_rule", "weight", "task", "split"]
    duplicated = scores.duplicated(key, keep="last")
    if duplicated.any():
        logger.warning("%s: %d duplicated rows; keeping the last of each", file, duplicated.sum())
        scores = scores[~duplicated]
    return scores.reset_index(drop=True)


def expected_tasks(rows: pd.DataFrame) -> dict[str, tuple[str, ...]]:
    """What each task type should cover: the paper's tasks of that type, then any other scored."""
    order = paper_task_order(load_paper())
    expected = {t: tuple(order.get(t, ())) for t in type_order(rows)}
    for task_type, task in rows[["task_type", "task"]].drop_duplicates().itertuples(index=False):
        if task not in expected[task_type]:
            expected[task_type] = (*expected[task_type], task)
    return expected


def type_order(rows: pd.DataFrame) -> list[str]:
    """The paper's six task types, then Retrieval, then any other type in the rows."""
    others = sorted(set(rows["task_type"]) - set(TASK_TYPES), key=lambda t: (type_rank(t), t))
    return [*TASK_TYPES, *others]


def sort_rows(frame: pd.DataFrame) -> pd.DataFrame:
    """Rows in the paper's order: model, prompt, then HS, RW, MoEE-concat, MoEE-sum."""
    rank = {m: i for i, m in enumerate(METHODS)}
    keys = frame["method"].map(lambda m: rank.get(m, len(rank)))
    order = ["model", "prompt", "_m", "layers", *PROVENANCE_COLUMNS]
    return frame.assign(_m=keys).sort_values(order, kind="stable").drop(columns="_m")


def type_means(rows: pd.DataFrame) -> dict[str, float]:
    """Task-type means (x100) of one row's scores, in table order, then the paper's Average."""
    means = task_type_means(zip(rows["task_type"], rows["main_score"], strict=True))
    return {**{t: 100 * v for t, v in means.items()}, AVERAGE: 100 * paper_average(means)}


def type_table(rows: pd.DataFrame) -> TypeTable:
    """Task-type means (x100) per row key, their average, and what each mean covers."""
    expected = expected_tasks(rows)
    types = [t for t in type_order(rows) if t in set(rows["task_type"])]
    records, covered = [], {}
    for key, group in sort_rows(rows).groupby(ROW_KEY, sort=False):
        means = type_means(group)
        record: dict[str, object] = dict(zip(ROW_KEY, key, strict=True))
        for task_type in types:
            have = set(group.loc[group["task_type"] == task_type, "task"])
            covered[(key, task_type)] = tuple(t for t in expected[task_type] if t in have)
            record[task_type] = means.get(task_type, math.nan)
        record[AVERAGE] = means[AVERAGE]
        records.append(record)
    notes = _coverage_notes(covered, expected, all_types=type_order(rows))
    return TypeTable(pd.DataFrame(records), covered, expected, notes)


def incomplete(table: TypeTable, key: tuple[str, ...], task_type: str) -> bool:
    """Whether a cell averages over fewer tasks (or, for Average, types) than it should."""
    if task_type == AVERAGE:  # the paper's six types, each complete
        full = [t for t in TASK_TYPES if table.expected.get(t)]
        return len(full) < len(TASK_TYPES) or any(incomplete(table, key, t) for t in full)
    have = table.covered.get((key, task_type), ())
    return len(have) < len(table.expected[task_type])


def _coverage_notes(covered: dict, expected: dict, *, all_types: list[str]) -> list[str]:
    groups: dict[tuple[str, tuple[str, ...]], int] = {}
    for (_key, task_type), have in covered.items():
        if len(have) < len(expected[task_type]):
            groups[(task_type, have)] = groups.get((task_type, have), 0) + 1
    n_rows = len({k for k, _ in covered})
    notes = []
    for (task_type, have), count in groups.items():
        missing = [t for t in expected[task_type] if t not in have]
        rows = "all rows" if count == n_rows else f"{count} of {n_rows} rows"
        notes.append(
            f"{DAGGER} {task_type} averages {len(have)} of {len(expected[task_type])} tasks "
            f"({', '.join(have) or 'none'}); missing {', '.join(missing)} [{rows}]"
        )
    scored = {t for _, t in covered}
    beyond = [t for t in all_types if t in scored and t not in TASK_TYPES]
    if beyond:
        notes.append(
            f"{AVERAGE} is the paper's: the mean of its six task types; "
            f"{', '.join(beyond)} stand(s) beside it, not in it"
        )
    absent = [t for t in TASK_TYPES if t not in scored]
    if absent:
        notes.append(f"{DAGGER} Average leaves out task types never scored: {', '.join(absent)}")
    return notes


def task_table(rows: pd.DataFrame, *, model: str) -> pd.DataFrame:
    """Per-task scores (x100) of one model: rows (task_type, task), columns = row labels."""
    mine = sort_rows(rows[rows["model"] == model])
    varying = [k for k in ROW_KEY if k != "model" and mine[k].nunique() > 1]
    varying = varying or ["method"]
    mine = mine.assign(label=[row_label(r, varying) for r in mine.to_dict("records")])
    wide = mine.pivot_table(
        index=["task_type", "task"], columns="label", values="main_score", sort=False
    )
    order = {t: i for i, t in enumerate(type_order(rows))}
    paper_pos = {t: i for tasks in expected_tasks(rows).values() for i, t in enumerate(tasks)}
    wide = wide.reset_index()
    wide = wide.assign(_t=wide["task_type"].map(order), _p=wide["task"].map(paper_pos))
    wide = wide.sort_values(["_t", "_p"]).drop(columns=["_t", "_p"])
    labels = list(dict.fromkeys(mine["label"]))
    return wide[["task_type", "task", *labels]].assign(**{c: wide[c] * 100 for c in labels})


def row_label(row: dict, keys: list[str]) -> str:
    """A short column label from the row-key fields that vary (e.g. "MoEE-sum w=2 · prompteol")."""
    parts = []
    for key in keys:
        value = row[key]
        if key == "weight_label":
            if value:
                parts.append(value if value.startswith("best") else f"w={value}")
        elif key in ("model", "prompt", "method"):
            parts.append(str(value))
        else:
            parts.append(f"{key}={value}")
    return " · ".join(parts)


def varying_columns(frame: pd.DataFrame) -> list[str]:
    """Row-key columns worth showing: model/prompt/method always, the others when they vary."""
    fixed = ["model", "prompt", "method", "weight_label"]
    return fixed + [k for k in ROW_KEY if k not in fixed and frame[k].nunique() > 1]


def constant_settings(frame: pd.DataFrame) -> str:
    """The settings every row shares, for a note under the table."""
    keys = ("rw", "zscore", "pooling", "layers", *PROVENANCE_COLUMNS)
    same = [k for k in keys if frame[k].nunique() == 1]
    return ", ".join(f"{k}={frame[k].iloc[0] or '?'}" for k in same)
