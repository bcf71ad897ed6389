"""`moee report`: the paper's tables (Tables 3-4 per task type; per task) from scores.csv.

Rows of scores.csv are (configuration, provenance, task, split) with main_score in 0-1; tables show
x100 with two decimals. Rows of different provenance (quantization, dtype, revision, max length,
features, z-score fit) are kept apart. A task-type average covers the tasks of that type that were
scored for the row; it is marked with a dagger whenever that is fewer than the type's tasks (the
paper's 19 tasks plus any other task of the type found in scores.csv), and the notes name them.

MoEE-sum weights: by default every scored weight (and the label-free `auto` rule) is its own row.
`weight` keeps one fixed weight; `weight_rule="auto"` keeps the auto rows; `select_on` picks the
best fixed weight per (configuration, task) on a split: on a validation split the table reports the
test score at the weight chosen there (a task without validation rows gets no MoEE-sum pick and is
named in the notes); on the test split itself the pick has seen the test labels and is labelled
"oracle" everywhere. Ties go to the smallest weight.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from moee_pipeline.cache.scores import PROVENANCE_COLUMNS, SCORE_COLUMNS, SCORES_FILE
from moee_pipeline.errors import MoeeError
from moee_pipeline.report.paper import AVERAGE, load_paper, paper_task_order
from moee_pipeline.task_types import TASK_TYPES

logger = logging.getLogger(__name__)

_CONFIG = ["model", "prompt", "method", "rw", "zscore", "pooling", "layers"]
GROUP_KEY = [*_CONFIG, *PROVENANCE_COLUMNS]
ROW_KEY = [*_CONFIG[:3], "weight_label", *_CONFIG[3:], *PROVENANCE_COLUMNS]
METHOD_ORDER = ("HS", "RW", "MoEE-concat", "MoEE-sum")
SUM = "MoEE-sum"
ORACLE = "oracle"
AUTO = "auto"
DAGGER = "†"
#: Columns added after the first release: files without them read as empty (unknown provenance).
LATER_COLUMNS = ("weight_rule", *PROVENANCE_COLUMNS)


class ReportError(MoeeError, ValueError):
    """scores.csv is missing, malformed, or holds nothing the options ask for."""


@dataclass(frozen=True)
class ReportOptions:
    """Which rows make the tables and how MoEE-sum's weight is chosen."""

    split: str = "test"
    weight: float | None = None
    weight_rule: str | None = None
    select_on: str | None = None

    def __post_init__(self) -> None:
        """One weight rule at a time."""
        chosen = [
            name
            for name, value in (
                ("--weight", self.weight),
                ("--weight-rule", self.weight_rule),
                ("--select-weight-on", self.select_on),
            )
            if value is not None
        ]
        if len(chosen) > 1:
            raise ReportError(f"use one of {', '.join(chosen)}, not several")
        if self.weight_rule not in (None, AUTO):
            raise ReportError(f"unknown --weight-rule {self.weight_rule!r}: use auto")

    @property
    def declared(self) -> bool:
        """Whether MoEE-sum's weight follows a declared rule (one row per configuration)."""
        return self.weight is not None or self.weight_rule is not None or bool(self.select_on)

    @property
    def oracle(self) -> bool:
        """Whether the weight is picked on the reported split's own scores."""
        return self.select_on == self.split


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
    """Read `<results>/scores.csv` (or the file itself) with its column set checked.

    Files written before the provenance columns existed are read with them empty, so their rows
    stay apart from rows of known provenance.
    """
    path = Path(path)
    file = path / SCORES_FILE if path.is_dir() else path
    if not file.is_file():
        raise ReportError(f"no scores at {file}: run `moee score --output {path}` first")
    scores = pd.read_csv(
        file, keep_default_na=False, na_values={"weight": [""], "main_score": [""]}, dtype=str
    )
    scores = with_later_columns(scores)
    missing = [c for c in SCORE_COLUMNS if c not in scores.columns]
    if missing:
        raise ReportError(f"{file} lacks column(s) {', '.join(missing)}")
    scores["weight"] = pd.to_numeric(scores["weight"])
    scores["main_score"] = pd.to_numeric(scores["main_score"])
    key = [*GROUP_KEY, "weight_rule", "weight", "task", "split"]
    duplicated = scores.duplicated(key, keep="last")
    if duplicated.any():
        logger.warning("%s: %d duplicated rows; keeping the last of each", file, duplicated.sum())
        scores = scores[~duplicated]
    return scores.reset_index(drop=True)


def format_weight(weight: float) -> str:
    """A weight as it appears in tables: shortest exact-looking form (1, 0.5, 2.5)."""
    return f"{weight:g}"


def format_weight_or_blank(weight: float) -> str:
    """A weight cell; blank where a rule has no weight."""
    return "" if pd.isna(weight) else format_weight(float(weight))


def _is_auto(frame: pd.DataFrame) -> pd.Series:
    return (frame["method"] == SUM) & (frame["weight_rule"] == AUTO)


def resolve_weights(scores: pd.DataFrame, *, options: ReportOptions) -> pd.DataFrame:
    """The rows on the report split, with MoEE-sum reduced as the options say.

    Adds `weight_label` (the table's weight column) and `basis` (how each task's weight was
    chosen: "fixed", "auto", "oracle" or the selection split).
    """
    scores = with_later_columns(scores)
    rows = scores[scores["split"] == options.split].copy()
    if rows.empty:
        splits = ", ".join(sorted(scores["split"].unique()))
        raise ReportError(f"no rows on split {options.split!r}; scores.csv has: {splits}")
    sums, auto = rows["method"] == SUM, _is_auto(rows)
    fixed = sums & ~auto
    rows["basis"] = np.where(auto, AUTO, np.where(sums, "fixed", ""))
    rows["weight_label"] = [
        AUTO if a else (format_weight(w) if m == SUM else "")
        for m, w, a in zip(rows["method"], rows["weight"], auto, strict=True)
    ]
    if options.weight is not None and sums.any():
        keep = ~sums | (fixed & np.isclose(rows["weight"], options.weight))
        if not (keep & sums).any():
            have = ", ".join(format_weight(w) for w in sorted(rows.loc[fixed, "weight"].unique()))
            raise ReportError(f"no MoEE-sum rows at weight {options.weight:g}; scored: {have}")
        return rows[keep].reset_index(drop=True)
    if options.weight_rule == AUTO and sums.any():
        if not auto.any():
            raise ReportError("no MoEE-sum rows with weight_rule=auto: score with --weight auto")
        return rows[~fixed].reset_index(drop=True)
    if options.select_on is None or not fixed.any():
        return rows.reset_index(drop=True)
    picked = _select(rows[fixed], scores, options=options)
    return pd.concat([rows[~sums], picked], ignore_index=True)


def _best_weight(frame: pd.DataFrame, task_key: list[str]) -> pd.DataFrame:
    """The highest-scoring weight per (configuration, task); ties go to the smallest weight."""
    best = frame.sort_values("weight", kind="stable").groupby(task_key, sort=False)["main_score"]
    return frame.loc[best.idxmax(), [*task_key, "weight"]]


def _held_out(scores: pd.DataFrame, sums: pd.DataFrame, select_on: str) -> pd.DataFrame:
    """Fixed-weight MoEE-sum rows on the selection split, at weights scored on the report split."""
    task_key = [*GROUP_KEY, "task"]
    held = scores[(scores["split"] == select_on) & (scores["method"] == SUM) & ~_is_auto(scores)]
    return held.merge(sums[[*task_key, "weight"]], on=[*task_key, "weight"])


def _select(sums: pd.DataFrame, scores: pd.DataFrame, *, options: ReportOptions) -> pd.DataFrame:
    """One MoEE-sum row per (configuration, task): the weight that scores best on `select_on`.

    On the report split itself that is the oracle; on another split a task without rows there
    gets no pick (see `unselected_tasks`), never a silent fallback to the oracle.
    """
    task_key = [*GROUP_KEY, "task"]
    select_on = str(options.select_on)
    if options.oracle:
        choice = _best_weight(sums, task_key).assign(basis=ORACLE)
    else:
        held = _held_out(scores, sums, select_on)
        if held.empty:
            return sums.iloc[0:0].assign(weight_label=pd.Series(dtype=str))
        choice = _best_weight(held, task_key).assign(basis=select_on)
    n_weights = sums.groupby(task_key, sort=False)["weight"].nunique().rename("n_weights")
    choice = choice.merge(n_weights.reset_index(), on=task_key)
    choice.loc[choice["n_weights"] == 1, "basis"] = "fixed"
    picks = sums.drop(columns="basis").merge(
        choice.drop(columns="n_weights"), on=[*task_key, "weight"]
    )
    labels = {}
    for key, group in picks.groupby(GROUP_KEY, sort=False):
        bases = group["basis"].value_counts()
        if list(bases.index) == ["fixed"] and group["weight"].nunique() == 1:
            labels[key] = format_weight(group["weight"].iloc[0])
        else:
            labels[key] = f"best ({ORACLE if options.oracle else select_on})"
    picks["weight_label"] = [labels[tuple(k)] for k in picks[GROUP_KEY].itertuples(index=False)]
    return picks


def unselected_tasks(scores: pd.DataFrame, options: ReportOptions) -> list[str]:
    """Tasks whose MoEE-sum weight could not be picked on the selection split (none scored)."""
    if not options.select_on or options.oracle:
        return []
    rows = scores[(scores["split"] == options.split) & (scores["method"] == SUM)]
    rows = rows[~_is_auto(rows)]
    held = _held_out(scores, rows, options.select_on)
    return sorted(set(rows["task"]) - set(held["task"]))


def rules_side_by_side(scores: pd.DataFrame, *, split: str = "test") -> pd.DataFrame:
    """Per configuration and task: MoEE-sum under the oracle, validation and auto rules (x100).

    Columns `<rule> w` hold the weight and `<rule>` the score on `split`; empty where a rule has
    nothing (no validation split, no auto rows, a single fixed weight).
    """
    sums = scores[(scores["split"] == split) & (scores["method"] == SUM)]
    fixed, auto = sums[~_is_auto(sums)], sums[_is_auto(sums)]
    task_key = [*GROUP_KEY, "task"]
    tables = []
    if fixed["weight"].nunique() > 1:
        oracle = _best_weight(fixed, task_key).merge(fixed, on=[*task_key, "weight"])
        tables.append(oracle[[*task_key, "weight", "main_score"]].assign(rule=ORACLE))
        held = _held_out(scores, fixed, "validation")
        if not held.empty:
            val = _best_weight(held, task_key).merge(fixed, on=[*task_key, "weight"])
            tables.append(val[[*task_key, "weight", "main_score"]].assign(rule="validation"))
    if not auto.empty:
        tables.append(auto[[*task_key, "weight", "main_score"]].assign(rule=AUTO))
    if not tables:
        return pd.DataFrame()
    long = pd.concat(tables, ignore_index=True)
    long["main_score"] *= 100
    wide = long.pivot_table(
        index=task_key, columns="rule", values=["weight", "main_score"], aggfunc="first"
    )
    out = wide.reset_index()
    columns = {}
    for rule in (ORACLE, "validation", AUTO):
        if ("weight", rule) in wide.columns:
            columns[f"{rule} w"] = wide[("weight", rule)].to_numpy()
            columns[rule] = wide[("main_score", rule)].to_numpy()
    frame = out[task_key].droplevel(1, axis=1) if out.columns.nlevels > 1 else out[task_key]
    return frame.assign(**columns).reset_index(drop=True)


def expected_tasks(rows: pd.DataFrame) -> dict[str, tuple[str, ...]]:
    """What each task type should cover: the paper's tasks of that type, then any other scored."""
    order = paper_task_order(load_paper())
    expected = {t: tuple(order.get(t, ())) for t in type_order(rows)}
    for task_type, task in rows[["task_type", "task"]].drop_duplicates().itertuples(index=False):
        if task not in expected[task_type]:
            expected[task_type] = (*expected[task_type], task)
    return expected


def type_order(rows: pd.DataFrame) -> list[str]:
    """The paper's six task types, then any other type in the rows."""
    others = sorted(set(rows["task_type"]) - set(TASK_TYPES))
    return [*TASK_TYPES, *others]


def sort_rows(frame: pd.DataFrame) -> pd.DataFrame:
    """Rows in the paper's order: model, prompt, then HS, RW, MoEE-concat, MoEE-sum."""
    rank = {m: i for i, m in enumerate(METHOD_ORDER)}
    keys = frame["method"].map(lambda m: rank.get(m, len(rank)))
    order = ["model", "prompt", "_m", "layers", *PROVENANCE_COLUMNS]
    return frame.assign(_m=keys).sort_values(order, kind="stable").drop(columns="_m")


def type_table(rows: pd.DataFrame) -> TypeTable:
    """Task-type means (x100) per row key, their average, and what each mean covers."""
    expected = expected_tasks(rows)
    types = [t for t in type_order(rows) if t in set(rows["task_type"])]
    records, covered = [], {}
    for key, group in sort_rows(rows).groupby(ROW_KEY, sort=False):
        record = dict(zip(ROW_KEY, key, strict=True))
        means = []
        for task_type in types:
            part = group[group["task_type"] == task_type]
            covered[(key, task_type)] = tuple(
                t for t in expected[task_type] if t in set(part["task"])
            )
            value = 100 * part["main_score"].mean() if len(part) else np.nan
            record[task_type] = value
            if len(part):
                means.append(value)
        record[AVERAGE] = float(np.mean(means)) if means else np.nan
        records.append(record)
    notes = _coverage_notes(covered, expected, all_types=type_order(rows))
    return TypeTable(pd.DataFrame(records), covered, expected, notes)


def incomplete(table: TypeTable, key: tuple[str, ...], task_type: str) -> bool:
    """Whether a cell averages over fewer tasks (or, for Average, types) than it should."""
    if task_type == AVERAGE:
        full = [t for t in TASK_TYPES if table.expected.get(t)]
        return len(full) < len(TASK_TYPES) or any(incomplete(table, key, t) for t in table.expected)
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
    absent = [t for t in TASK_TYPES if t not in {t for _, t in covered}]
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
