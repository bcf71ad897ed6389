"""`moee report --format html`: one self-contained file holding what markdown + --plots hold.

The HTML is parsed with the standard library's parser under a strict check (every element
closed in order, nothing fetched from elsewhere); its tables and figures are compared with the
markdown report's sections and the PNG files --plots writes for the same scores.
"""

from __future__ import annotations

import base64
import re
from html.parser import HTMLParser
from pathlib import Path

import pandas as pd
from click.testing import CliRunner

from moee_pipeline.cli import main
from moee_pipeline.report.html import Figure, html_document
from moee_pipeline.report.model import Report, Table
from tests.report.test_plots import PNG_MAGIC
from tests.report.test_report import full_rows, write

VOID = {"meta", "img", "br", "hr", "link", "input", "source", "col", "wbr"}


class Strict(HTMLParser):
    """Collects titles, table row counts, images and text; fails on unbalanced tags or on any
    reference to something outside the file."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.stack: list[str] = []
        self.tables: list[tuple[str, int, int]] = []  # title, body rows, columns
        self.images: list[tuple[str, str]] = []  # src, alt
        self.text: list[str] = []
        self._heading = ""
        self._in: str | None = None
        self._rows = self._columns = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        named = dict(attrs)
        assert "href" not in named, f"a link: {named['href']}"
        source = named.get("src") or ""
        assert not source or source.startswith("data:"), f"an outside reference: {source[:60]}"
        assert tag not in {"script", "link", "iframe", "object"}, f"<{tag}> in the report"
        if tag == "img":
            self.images.append((named.get("src") or "", named.get("alt") or ""))
        if tag not in VOID:
            self.stack.append(tag)
        if tag in {"h1", "h2", "th", "td", "li", "title", "figcaption", "style"}:
            self._in = tag
            if tag == "h2":
                self._heading = ""
        if tag == "table":
            self._rows = self._columns = 0
        if tag == "tr" and self.stack[-2:-1] == ["tbody"]:
            self._rows += 1
        if tag == "th":
            self._columns += 1

    def handle_endtag(self, tag: str) -> None:
        assert self.stack and self.stack[-1] == tag, f"</{tag}> closes {self.stack[-1:]}"
        self.stack.pop()
        if tag == "table":
            self.tables.append((self._heading, self._rows, self._columns))
        self._in = None

    def handle_data(self, data: str) -> None:
        if self._in == "h2":
            self._heading += data
        if self._in == "style":
            assert "url(" not in data and "@import" not in data, "the style fetches something"
        self.text.append(data)


def parse(text: str) -> Strict:
    assert text.startswith("<!DOCTYPE html>")
    parser = Strict()
    parser.feed(text)
    parser.close()
    assert parser.stack == [], f"unclosed: {parser.stack}"
    return parser


def markdown_tables(text: str) -> list[tuple[str, int, int]]:
    """(title, body rows, columns) of every `## title` table of a markdown report."""
    found = []
    for section in re.split(r"(?m)^## ", text)[1:]:
        title, _, body = section.partition("\n")
        lines = [line for line in body.splitlines() if line.startswith("|")]
        columns = len(re.split(r"(?<!\\)\|", lines[0].strip())[1:-1])
        found.append((title, len(lines) - 2, columns))
    return found


def test_html_holds_every_table_and_figure_of_markdown_and_plots(tmp_path: Path) -> None:
    rows = full_rows("HS") + full_rows("RW", 0.01) + full_rows("MoEE-concat", 0.02)
    for i, weight in enumerate((0.5, 1.0, 2.0)):
        rows += full_rows("MoEE-sum", 0.03 + 0.01 * i, weight=weight)
    results = write(tmp_path, rows)
    common = ["report", "--results", str(results), "--compare-paper", "--weight", "1"]
    runner = CliRunner()
    markdown = runner.invoke(main, [*common, "--plots", str(tmp_path / "md-plots")])
    assert markdown.exit_code == 0, markdown.output
    page = tmp_path / "share" / "report.html"
    html = runner.invoke(main, [*common, "--format", "html", "--out", str(page)])
    assert html.exit_code == 0, html.output
    assert f"report -> {page}" in html.output

    parsed = parse(page.read_text(encoding="utf-8"))
    expected = markdown_tables(markdown.output)
    assert len(expected) >= 4  # per type, per task, the paper comparison, at the least
    assert any(title.startswith("Comparison with the paper") for title, _, _ in expected)
    assert parsed.tables == expected
    # the notes under the tables, word for word
    for note in re.findall(r"^- (.+)$", markdown.output, flags=re.MULTILINE):
        assert note in parsed.text
    # the figures: those --plots writes, byte for byte, with a weight sweep among them
    pngs = sorted((tmp_path / "md-plots").glob("*.png"))
    assert any(p.name.startswith("weight_sweep_") for p in pngs)
    embedded = {alt: src for src, alt in parsed.images}
    assert sorted(embedded) == [p.name for p in pngs]
    for png in pngs:
        prefix = "data:image/png;base64,"
        assert embedded[png.name].startswith(prefix)
        data = base64.b64decode(embedded[png.name].removeprefix(prefix), validate=True)
        assert data[:8] == PNG_MAGIC and len(data) > 15_000
        assert data == png.read_bytes()

    # with --plots, html writes the same files there and embeds exactly those bytes
    both = runner.invoke(
        main, [*common, "--format", "html", "--out", str(page), "--plots", str(tmp_path / "p")]
    )
    assert both.exit_code == 0, both.output
    again = {alt: src for src, alt in parse(page.read_text(encoding="utf-8")).images}
    written = sorted((tmp_path / "p").glob("*.png"))
    assert [p.name for p in written] == [p.name for p in pngs]
    for png in written:
        assert base64.b64decode(again[png.name].split(",", 1)[1]) == png.read_bytes()


def test_every_cell_title_and_note_is_escaped() -> None:
    nasty = '<script>alert("x")</script> & <b>'
    frame = pd.DataFrame({"model <i>": [nasty, "1.00"], "STS": ["2.50", "3.00"]})
    built = Report(
        tables=(Table(f"title {nasty}", frame, (f"note {nasty}",)),),
        comparison=None,
        data=frame,
    )
    text = html_document(built, [Figure('a"b<c>.png', PNG_MAGIC)])
    parsed = parse(text)  # no <script>, <b> or <i> element survives
    assert parsed.tables == [(f"title {nasty}", 2, 2)]
    for shown in (nasty, f"note {nasty}", "model <i>", 'a"b<c>.png'):
        assert shown in parsed.text
    assert parsed.images[0][1] == 'a"b<c>.png'
    assert '<td class="num">2.50</td>' in text
