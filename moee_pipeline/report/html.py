"""`moee report --format html`: the whole report as one self-contained HTML file.

The same built `Report` the markdown and LaTeX renderers lay out (every table, every note), plus
the figures `--plots` writes, embedded as `data:` URIs; the style sheet is inline and nothing is
fetched (no script, font or external style), so the file reads offline in any browser and can be
mailed as it is. Every cell, title and note is escaped. The figures are exactly the PNG files
`make_plots` writes (into `--plots DIR` when given, else into a temporary folder), so the HTML
holds each figure the markdown report's `--plots` would write, whatever figures that grows.
"""

from __future__ import annotations

import base64
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from html import escape
from pathlib import Path

import pandas as pd

from moee_pipeline.report.model import Report, Table
from moee_pipeline.report.options import ReportOptions
from moee_pipeline.report.render import HEADERS, numeric_columns

_STYLE = """
body { font-family: system-ui, -apple-system, "Segoe UI", Helvetica, Arial, sans-serif;
       margin: 2em auto; max-width: 75em; padding: 0 1em; color: #1a1a1a; }
h1 { font-size: 1.5em; } h2 { font-size: 1.15em; margin-top: 2em; }
table { border-collapse: collapse; font-size: 0.85em; margin: 0.5em 0; }
th, td { border: 1px solid #ccc; padding: 0.25em 0.5em; }
th { background: #f2f2f2; text-align: left; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
.wide { overflow-x: auto; }
ul.notes { font-size: 0.85em; color: #444; }
figure { margin: 1.5em 0; } figure img { max-width: 100%; height: auto; }
figcaption { font-size: 0.85em; color: #444; }
"""


@dataclass(frozen=True)
class Figure:
    """One figure of the report: its file name as `--plots` writes it, and its PNG bytes."""

    name: str
    png: bytes


def report_figures(
    *, scores: pd.DataFrame, options: ReportOptions, plots_dir: Path | None = None
) -> list[Figure]:
    """The figures `moee report --plots` makes, read back to embed; written to `plots_dir` as
    well when given (else to a temporary folder, removed afterwards)."""
    from moee_pipeline.report.plots import make_plots

    if plots_dir is not None:
        paths = make_plots(scores=scores, options=options, out_dir=plots_dir)
        return [Figure(p.name, p.read_bytes()) for p in paths]
    with tempfile.TemporaryDirectory(prefix="moee-report-") as folder:
        paths = make_plots(scores=scores, options=options, out_dir=Path(folder))
        return [Figure(p.name, p.read_bytes()) for p in paths]


def _cell(value: object, *, numeric: bool, header: bool = False) -> str:
    tag = "th" if header else "td"
    klass = ' class="num"' if numeric and not header else ""
    return f"<{tag}{klass}>{escape(str(value))}</{tag}>"


def _table(table: Table) -> list[str]:
    frame = table.frame
    headers = [HEADERS.get(str(c), str(c)) for c in frame.columns]
    numeric = numeric_columns(frame)
    flags = [c in numeric for c in frame.columns]
    lines = [
        f"<section><h2>{escape(table.title)}</h2>",
        '<div class="wide"><table>',
        "<thead><tr>" + "".join(_cell(h, numeric=False, header=True) for h in headers),
        "</tr></thead><tbody>",
    ]
    for row in frame.astype(str).to_numpy().tolist():
        cells = "".join(_cell(v, numeric=n) for v, n in zip(row, flags, strict=True))
        lines.append(f"<tr>{cells}</tr>")
    lines.append("</tbody></table></div>")
    if table.notes:
        lines.append('<ul class="notes">')
        lines += [f"<li>{escape(note)}</li>" for note in table.notes]
        lines.append("</ul>")
    lines.append("</section>")
    return lines


def _figure(figure: Figure) -> list[str]:
    data = base64.b64encode(figure.png).decode("ascii")
    name = escape(figure.name)
    return [
        "<figure>",
        f'<img src="data:image/png;base64,{data}" alt="{name}">',
        f"<figcaption>{name}</figcaption>",
        "</figure>",
    ]


def html_document(built: Report, figures: Sequence[Figure], *, title: str = "moee report") -> str:
    """The report as one HTML5 document: headers and right-aligned columns as the markdown
    renderer has them, the figures after the tables."""
    tables = [*built.tables, *([built.comparison] if built.comparison is not None else [])]
    lines = [
        "<!DOCTYPE html>",
        '<html lang="en">',
        "<head>",
        '<meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{escape(title)}</title>",
        f"<style>{_STYLE}</style>",
        "</head>",
        "<body>",
        f"<h1>{escape(title)}</h1>",
    ]
    for table in tables:
        lines += _table(table)
    if figures:
        lines.append("<section><h2>Figures</h2>")
        for figure in figures:
            lines += _figure(figure)
        lines.append("</section>")
    lines += ["</body>", "</html>"]
    return "\n".join(lines) + "\n"
