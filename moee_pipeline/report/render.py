"""Rendering `moee report`: the built `Report` laid out as markdown, LaTeX (booktabs) or CSV.

Markdown and LaTeX hold the whole report (per-type table, per-task tables, chosen weights, weight
rules side by side, paper comparison); CSV holds one machine-readable table: per configuration the
type averages, the six-type average, every task and a `coverage` column (or, with
--compare-paper, the comparison). Nothing here computes a number: see `report.model`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import pandas as pd

from moee_pipeline.report import Format
from moee_pipeline.report import tables as report
from moee_pipeline.report.model import Report, Table, build
from moee_pipeline.report.options import ReportOptions

_HEADERS = {"weight_label": "weight"}
_LATEX_SPECIAL = {"\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#"}
_LATEX_SPECIAL |= {"_": r"\_", "{": r"\{", "}": r"\}", "~": r"\textasciitilde{}", "^": r"\^{}"}


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


def _table(fmt: Format, table: Table) -> str:
    title, frame, notes = table.title, table.frame, table.notes
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


def render(built: Report, fmt: Format) -> str:
    """The report as one string in the given format."""
    if fmt == "csv":
        return built.data.rename(columns=_HEADERS).round(4).to_csv(index=False)
    parts = [_table(fmt, t) for t in built.tables]
    if built.comparison is not None:
        parts.append(_table(fmt, built.comparison))
    return "\n\n".join(parts) + "\n"


def build_report(
    *,
    scores: pd.DataFrame,
    options: ReportOptions,
    fmt: Format,
    compare_paper: bool,
    skipped: Mapping[str, str] | None = None,
) -> str:
    """Build the report once and render it (the whole of `moee report`'s text)."""
    built = build(scores=scores, options=options, compare_paper=compare_paper, skipped=skipped)
    return render(built, fmt)
