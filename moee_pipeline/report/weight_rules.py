"""Which MoEE-sum weight a report shows: every one, a fixed one, `auto`, or picked on a split.

By default every scored weight (and the label-free `auto` rule) is its own row. `weight` keeps one
fixed weight; `weight_rule="auto"` keeps the auto rows; `select_on` picks the best fixed weight per
(configuration, task) on a split: on a validation split the table reports the test score at the
weight chosen there (a task without validation rows gets no MoEE-sum pick and is named in the
notes); on the test split itself the pick has seen the test labels and is labelled "oracle"
everywhere. Ties go to the smallest weight.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from moee_pipeline.report.options import ReportError, ReportOptions
from moee_pipeline.report.tables import GROUP_KEY, ORACLE, with_later_columns
from moee_pipeline.vocabulary import AUTO, FIXED, SUM, format_weight

__all__ = ["resolve_weights", "rules_side_by_side", "unselected_tasks", "weight_cell"]


def weight_cell(weight: float) -> str:
    """A weight cell of a table; blank where a rule has no weight."""
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
    rows["basis"] = np.where(auto, AUTO, np.where(sums, FIXED, ""))
    rows["weight_label"] = [
        AUTO if a else (format_weight(w) if m == SUM else "")
        for m, w, a in zip(rows["method"], rows["weight"], auto, strict=True)
    ]
    if options.weight is not None and sums.any():
        keep = ~sums | (fixed & np.isclose(rows["weight"], options.weight))
        if not (keep & sums).any():
            have = ", ".join(format_weight(w) for w in sorted(rows.loc[fixed, "weight"].unique()))
            raise ReportError(
                f"no {SUM} rows at weight {format_weight(options.weight)}; scored: {have}"
            )
        return rows[keep].reset_index(drop=True)
    if options.weight_rule == AUTO and sums.any():
        if not auto.any():
            raise ReportError(f"no {SUM} rows with weight_rule={AUTO}: score with --weight {AUTO}")
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
    choice.loc[choice["n_weights"] == 1, "basis"] = FIXED
    picks = sums.drop(columns="basis").merge(
        choice.drop(columns="n_weights"), on=[*task_key, "weight"]
    )
    labels = {}
    for key, group in picks.groupby(GROUP_KEY, sort=False):
        bases = group["basis"].value_counts()
        if list(bases.index) == [FIXED] and group["weight"].nunique() == 1:
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
