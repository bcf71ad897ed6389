"""Rendering `moee report`: tables as markdown, LaTeX (booktabs) or CSV, with their notes.

Markdown and LaTeX hold the whole report (per-type table, per-task tables, chosen weights, paper
comparison); CSV holds one machine-readable table: per configuration the type averages, the
six-type average, every task and a `coverage` column (or, with --compare-paper, the comparison).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Literal

import pandas as pd

from moee_pipeline.report import tables as report
from moee_pipeline.report.paper import AVERAGE, compare_with_paper, load_paper

Format = Literal["markdown", "csv", "latex"]
FORMATS: tuple[str, ...] = ("markdown", "csv", "latex")
_HEADERS = {"weight_label": "weight"}
_LATEX_SPECIAL = {"\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#"}
_LATEX_SPECIAL |= {"_": r"\_", "{": r"\{", "}": r"\}", "~": r"\textasciitilde{}", "^": r"\^{}"}


def number(value: float) -> str:
    """x100 score cell: two decimals, blank when missing."""
    return (
        "" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{value:.2f}"
    )


def markdown_table(headers: Sequence[str], rows: Sequence[Sequence[str]], numeric: set[int]) -> str:
    """A GitHub-flavoured markdown table; numeric columns right-aligned."""
    align = ["---:" if i in numeric else "---" for i in range(len(headers))]
    lines = [headers, align, *rows]
    return "\n".join("| " + " | ".join(str(c).replace("|", "\\|") for c in r) + " |" for r in lines)


def _latex_escape(text: str) -> str:
    out = "".join(_LATEX_SPECIAL.get(ch, ch) for ch in str(text))
    return out.replace(report.DAGGER, r"$^\dagger$").replace("·", r"$\cdot$")


def latex_table(
    headers: Sequence[str], rows: Sequence[Sequence[str]], numeric: set[int], caption: str
) -> str:
    """A booktabs table environment."""
    spec = "".join("r" if i in numeric else "l" for i in range(len(headers)))
    body = [" & ".join(_latex_escape(c) for c in r) + r" \\" for r in rows]
    return "\n".join(
        [
            r"\begin{table}[ht]",
            r"\centering\small",
            rf"\caption{{{_latex_escape(caption)}}}",
            rf"\begin{{tabular}}{{{spec}}}",
            r"\toprule",
            " & ".join(_latex_escape(h) for h in headers) + r" \\",
            r"\midrule",
            *body,
            r"\bottomrule",
            r"\end{tabular}",
            r"\end{table}",
        ]
    )


def _table(fmt: Format, title: str, frame: pd.DataFrame, notes: Sequence[str]) -> str:
    headers = [_HEADERS.get(c, c) for c in frame.columns]
    numeric = {i for i, c in enumerate(frame.columns) if c in _numeric_columns(frame)}
    rows = frame.astype(str).to_numpy().tolist()
    if fmt == "latex":
        text = latex_table(headers, rows, numeric, title)
        return text + "".join(f"\n% {n}" for n in notes)
    text = f"## {title}\n\n{markdown_table(headers, rows, numeric)}"
    return text + ("\n\n" + "\n".join(f"- {n}" for n in notes) if notes else "")


def _numeric_columns(frame: pd.DataFrame) -> set[str]:
    return {c for c in frame.columns if frame[c].astype(str).str.match(r"^[-+]?[\d.]*†?$").all()}


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


def _weight_notes(rows: pd.DataFrame, options: report.ReportOptions) -> list[str]:
    labels = set(rows.loc[rows["method"] == report.SUM, "weight_label"])
    notes = []
    if any(report.ORACLE in label for label in labels):
        notes.append(
            "best (oracle): MoEE-sum weight picked per task on the test scores themselves; it has "
            "seen the test labels, so it is an upper bound, not a fair result"
        )
    if options.select_on and options.select_on != options.split:
        notes.append(
            f"best ({options.select_on}): weight picked per task on the {options.select_on} "
            f"split, test score reported at that weight"
        )
    return notes


def build_report(
    *, scores: pd.DataFrame, options: report.ReportOptions, fmt: Format, compare_paper: bool
) -> str:
    """The whole report for `moee report` as one string."""
    if compare_paper:
        options = options.single_weight()
    rows = report.sort_rows(report.resolve_weights(scores, options=options))
    table = report.type_table(rows)
    shown = report.varying_columns(rows)
    settings = f"split={options.split}; {report.constant_settings(rows)}"
    comparison: pd.DataFrame | None = None
    paper_notes: list[str] = []
    if compare_paper:
        comparison, paper_notes = compare_with_paper(
            rows, paper=load_paper(), row_key=shown, type_order=report.type_order(rows)
        )
    if fmt == "csv":
        return _csv(rows, table, shown, comparison)
    notes = [
        f"settings shared by every row: {settings}",
        *table.notes,
        *_weight_notes(rows, options),
    ]
    parts = [_table(fmt, "Scores by task type (x100)", _type_cells(table, shown), notes)]
    for model in rows["model"].unique():
        tasks = report.task_table(rows, model=model)
        cells = tasks.assign(**{c: tasks[c].map(number) for c in tasks.columns[2:]})
        parts.append(_table(fmt, f"Scores by task (x100): {model}", cells, []))
    chosen = _chosen_weights(rows)
    if chosen is not None:
        parts.append(_table(fmt, "MoEE-sum weight chosen per task", chosen, []))
    if comparison is not None:
        parts.append(_comparison(fmt, comparison, paper_notes))
    return "\n\n".join(parts) + "\n"


def _chosen_weights(rows: pd.DataFrame) -> pd.DataFrame | None:
    picked = rows[(rows["method"] == report.SUM) & rows["weight_label"].str.startswith("best")]
    if picked.empty:
        return None
    picked = picked.assign(
        config=[
            report.row_label(r, ["model", "prompt", "layers"]) for r in picked.to_dict("records")
        ],
        chosen=[
            f"{report.format_weight(w)} ({b})"
            for w, b in zip(picked["weight"], picked["basis"], strict=True)
        ],
    )
    wide = picked.pivot_table(index="task", columns="config", values="chosen", aggfunc="first")
    return wide.reset_index().fillna("")


def _comparison(fmt: Format, comparison: pd.DataFrame, notes: list[str]) -> str:
    if comparison.empty:
        return _table(
            fmt,
            "Comparison with the paper",
            pd.DataFrame({"": []}),
            notes or ["nothing to compare"],
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
    return _table(fmt, "Comparison with the paper (x100, diff = ours - paper)", shown, notes)


def _csv(
    rows: pd.DataFrame,
    table: report.TypeTable,
    shown: list[str],
    comparison: pd.DataFrame | None,
) -> str:
    if comparison is not None:
        return comparison.round(4).to_csv(index=False)
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
    out = out[[*shown, *types, *task_columns, "coverage"]].rename(columns=_HEADERS)
    return out.round(4).to_csv(index=False)
