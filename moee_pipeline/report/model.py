"""The report as data: built once from scores.csv, then rendered by `report.render` as is.

Every number, dagger, label and note is decided here; renderers only lay the tables out as
markdown, LaTeX or CSV. That keeps the formats from disagreeing (an oracle labelled in one and not
in another) and keeps table logic out of the renderers.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import SupportsFloat

import pandas as pd

from moee_pipeline.report import tables as report
from moee_pipeline.report import weight_rules
from moee_pipeline.report.options import ReportError, ReportOptions
from moee_pipeline.report.paper import AVERAGE, compare_with_paper, load_paper
from moee_pipeline.vocabulary import AUTO, SUM, format_weight


@dataclass(frozen=True)
class Table:
    """One titled table: display cells (strings) and the notes printed under it."""

    title: str
    frame: pd.DataFrame
    notes: tuple[str, ...] = ()


@dataclass(frozen=True)
class Report:
    """Everything `moee report` shows.

    Attributes:
        tables: the per-type table, per-task tables, chosen weights and rules side by side.
        comparison: the paper comparison (display cells), when asked for.
        data: the machine-readable table (numbers, x100) that the CSV format writes.
    """

    tables: tuple[Table, ...]
    comparison: Table | None
    data: pd.DataFrame


ORACLE_NOTE = (
    f"{report.ORACLE}: {SUM} weight picked per task on the test scores themselves; it has seen "
    "the test labels, so it is an upper bound, not a fair result"
)
AUTO_NOTE = (
    f"{AUTO}: {SUM} weight chosen per task and split without labels, maximising "
    "rho(s, s_HS) + rho(s, s_RW) over the pairs the split's evaluation compares"
)


def number(value: SupportsFloat | None) -> str:
    """x100 score cell: two decimals, blank when missing."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    return f"{float(value):.2f}"


def _type_cells(table: report.TypeTable, shown: list[str]) -> pd.DataFrame:
    values = table.values
    types = [c for c in values.columns if c not in report.ROW_KEY]
    out = values[shown].copy()
    for task_type in types:
        out[task_type] = [
            number(v) + (report.DAGGER if report.incomplete(table, tuple(k), task_type) else "")
            for v, k in zip(
                values[task_type], values[report.ROW_KEY].itertuples(index=False), strict=True
            )
        ]
    return out


def _weight_notes(rows: pd.DataFrame, options: ReportOptions, unpicked: list[str]) -> list[str]:
    labels = set(rows.loc[rows["method"] == SUM, "weight_label"])
    notes = []
    if any(report.ORACLE in label for label in labels):
        notes.append(f"best ({ORACLE_NOTE})")
    if any(label == AUTO for label in labels):
        notes.append(AUTO_NOTE)
    if options.select_on and not options.oracle:
        notes.append(
            f"best ({options.select_on}): weight picked per task on the {options.select_on} "
            f"split, test score reported at that weight"
        )
    if unpicked:
        notes.append(
            f"no {SUM} row for {', '.join(unpicked)}: no {options.select_on} scores to pick "
            f"its weight on (score with --split {options.select_on}, or pick the oracle with "
            f"--select-weight-on {options.split})"
        )
    return notes


def _chosen_weights(rows: pd.DataFrame) -> pd.DataFrame | None:
    picked = rows[
        (rows["method"] == SUM)
        & (rows["weight_label"].str.startswith("best") | (rows["basis"] == AUTO))
    ]
    if picked.empty:
        return None
    picked = picked.assign(
        config=[
            report.row_label(r, ["model", "prompt", "layers", "weight_label"])
            for r in picked.to_dict("records")
        ],
        chosen=[
            f"{format_weight(w)} ({b})"
            for w, b in zip(picked["weight"], picked["basis"], strict=True)
        ],
    )
    wide = picked.pivot_table(index="task", columns="config", values="chosen", aggfunc="first")
    return wide.reset_index().fillna("")


def _side_by_side(scores: pd.DataFrame, split: str) -> Table | None:
    frame = weight_rules.rules_side_by_side(scores, split=split)
    if frame.empty:
        return None
    config = [k for k in report.GROUP_KEY if k != "method"]
    shown = ["model", "prompt"] + [k for k in config[2:] if frame[k].nunique() > 1]
    rules = [c for c in frame.columns if c not in report.GROUP_KEY and c != "task"]
    out = frame[[*shown, "task", *rules]].copy()
    for column in rules:
        out[column] = (
            out[column].map(weight_rules.weight_cell)
            if column.endswith(" w")
            else out[column].map(number)
        )
    notes = [ORACLE_NOTE, "validation: weight picked on the validation split", AUTO_NOTE]
    return Table(f"{SUM} weight rules side by side ({split}, x100)", out, tuple(notes))


def _comparison(comparison: pd.DataFrame, notes: list[str]) -> Table:
    if comparison.empty:
        return Table(
            "Comparison with the paper",
            pd.DataFrame({"": []}),
            tuple(notes or ["nothing to compare"]),
        )
    shown = comparison.copy()
    for column in ("ours", "paper", "paper_same_tasks", "diff"):
        shown[column] = shown[column].map(number)
    shown["diff"] = [d if not d or d.startswith("-") else f"+{d}" for d in shown["diff"]]
    notes = [
        "paper = published number; paper_same_tasks = the paper's mean over only the tasks we "
        "scored (diff is taken against it when present)",
        *notes,
    ]
    return Table("Comparison with the paper (x100, diff = ours - paper)", shown, tuple(notes))


def _data(rows: pd.DataFrame, table: report.TypeTable, shown: list[str]) -> pd.DataFrame:
    values = table.values
    types = [c for c in values.columns if c not in report.ROW_KEY]
    wide = rows.pivot_table(index=report.ROW_KEY, columns="task", values="main_score", sort=False)
    wide = (wide * 100).reset_index()
    out = values.merge(wide, on=report.ROW_KEY, how="left")
    out["coverage"] = [
        "; ".join(
            f"{t} {len(table.covered.get((tuple(k), t), ()))}/{len(table.expected[t])}"
            if t != AVERAGE
            else "Average incomplete"
            for t in types
            if report.incomplete(table, tuple(k), t)
        )
        or "complete"
        for k in values[report.ROW_KEY].itertuples(index=False)
    ]
    task_columns = [c for c in wide.columns if c not in report.ROW_KEY]
    return out[[*shown, *types, *task_columns, "coverage"]]


def build(
    *,
    scores: pd.DataFrame,
    options: ReportOptions,
    compare_paper: bool,
    skipped: Mapping[str, str] | None = None,
) -> Report:
    """The whole report for `moee report`, built once; `skipped` ({task: type}) names the
    benchmark tasks `moee score` left out as of types we do not score (`cache.skipped`).

    Raises:
        ReportError: `compare_paper` without a declared MoEE-sum weight rule.
    """
    scores = report.with_later_columns(scores)
    if compare_paper and not options.declared and (scores["method"] == SUM).any():
        raise ReportError(
            f"--compare-paper compares {SUM} only under a declared weight rule: add --weight W, "
            "--weight-rule auto or --select-weight-on validation (--select-weight-on test for a "
            "labelled oracle)"
        )
    rows = report.sort_rows(weight_rules.resolve_weights(scores, options=options))
    table = report.type_table(rows)
    shown = report.varying_columns(rows)
    unpicked = weight_rules.unselected_tasks(scores, options)
    notes = [
        f"settings shared by every row: split={options.split}; {report.constant_settings(rows)}",
        *table.notes,
        *_weight_notes(rows, options, unpicked),
    ]
    if skipped:
        listed = ", ".join(f"{task} ({kind})" for task, kind in sorted(skipped.items()))
        notes.append(f"not scored, of types we do not score: {listed}")
    tables = [Table("Scores by task type (x100)", _type_cells(table, shown), tuple(notes))]
    for model in rows["model"].unique():
        tasks = report.task_table(rows, model=model)
        cells = tasks.assign(**{c: tasks[c].map(number) for c in tasks.columns[2:]})
        tables.append(Table(f"Scores by task (x100): {model}", cells))
    chosen = _chosen_weights(rows)
    if chosen is not None:
        tables.append(Table(f"{SUM} weight chosen per task", chosen))
    side = _side_by_side(scores, options.split)
    if side is not None:
        tables.append(side)
    comparison = None
    data = _data(rows, table, shown)
    if compare_paper:
        compared, paper_notes = compare_with_paper(
            rows, paper=load_paper(), row_key=shown, type_order=report.type_order(rows)
        )
        comparison = _comparison(compared, paper_notes)
        data = compared
    return Report(tables=tuple(tables), comparison=comparison, data=data)
