"""The paper's Table 5 in `moee report` (layers and pooling), with and without --compare-paper,
and the figure of HS score against its layer. Expected numbers are computed here by hand."""

from __future__ import annotations

from pathlib import Path
from statistics import mean

import pandas as pd
import pytest

from moee_pipeline.report.layer_table import TABLE5_TASKS, load_paper_table5
from moee_pipeline.report.model import build
from moee_pipeline.report.options import ReportOptions
from moee_pipeline.report.plots import hs_layer_curves, make_plots
from moee_pipeline.report.render import render
from moee_pipeline.report.tables import load_scores
from tests.report.test_plots import check_png
from tests.support.paths import SHARED

DEEPSEEK = "deepseek-ai/deepseek-moe-16b-base"
TITLE = "Layers and pooling (the paper's Table 5, x100)"
#: (method, pooling, hs_layers, weight) -> score offset; task i scores 0.40 + 0.01 i + offset.
CONFIGS = {
    ("HS", "last", "last", ""): 0.10,
    ("HS", "last", "all", ""): 0.05,
    ("HS", "mean", "last", ""): -0.20,
    ("HS", "mean", "all", ""): 0.08,
    ("RW", "last", "last", ""): 0.12,
    ("RW", "mean", "last", ""): 0.0,
    ("MoEE-concat", "last", "last", ""): 0.15,
    ("MoEE-sum", "last", "last", "1"): 0.25,
    ("MoEE-sum", "last", "all", "1"): 0.27,
    ("HS", "last", "0", ""): -0.1,
    ("HS", "last", "1", ""): 0.0,
    ("HS", "last", "2", ""): 0.02,
}
STS_TASKS = [*TABLE5_TASKS, "SICK-R"]  # SICK-R is not in Table 5's mean


def _score(i: int, offset: float) -> float:
    return round(0.40 + 0.01 * i + offset, 4)


def _rows(
    model: str = DEEPSEEK, prompt: str = "prompteol", tasks: list[str] = STS_TASKS
) -> list[dict[str, object]]:
    out: list[dict[str, object]] = []
    for (method, pooling, hs_layers, weight), offset in CONFIGS.items():
        for i, task in enumerate(tasks):
            out.append(
                {
                    "model": model,
                    "prompt": prompt,
                    "method": method,
                    "weight": weight,
                    "weight_rule": "fixed" if weight else "",
                    "rw": "logits",
                    "zscore": "auto",
                    "pooling": pooling,
                    "layers": "all",
                    "hs_layers": hs_layers,
                    "task": task,
                    "task_type": "STS",
                    "split": "test",
                    "main_metric": "cosine_spearman",
                    "main_score": _score(i, offset),
                }
            )
    return out


def _scores(tmp_path: Path, rows: list[dict[str, object]]) -> pd.DataFrame:
    pd.DataFrame(rows).to_csv(tmp_path / "scores.csv", index=False)
    return load_scores(tmp_path)


def _expected(offset: float, tasks: list[str] = STS_TASKS) -> str:
    return f"{100 * mean(_score(i, offset) for i, t in enumerate(tasks) if t in TABLE5_TASKS):.2f}"


def _table(report_text: str) -> list[list[str]]:
    section = report_text.split(f"## {TITLE}")[1].split("\n## ")[0]
    lines = [ln for ln in section.splitlines() if ln.startswith("|")][2:]
    return [[c.strip() for c in ln.strip("|").split("|")] for ln in lines]


def test_the_shipped_table5_is_the_papers() -> None:
    shipped = load_paper_table5()
    source = SHARED / "paper" / "moee_paper_table5.csv"
    if source.is_file():
        assert shipped.equals(pd.read_csv(source, keep_default_na=False))
    assert list(shipped["score_x100"]) == [60.40, 55.03, 32.78, 56.34, 61.18, 46.03, 71.75]


def test_table5_rows_are_the_sts12_16_means_and_best_moee_is_the_oracle(tmp_path: Path) -> None:
    scores = _scores(tmp_path, _rows())
    text = render(build(scores=scores, options=ReportOptions(), compare_paper=False), "markdown")
    cells = _table(text)
    got = {(r[2], r[3], r[4]): r[5] for r in cells}
    assert got[("HS", "last token", "last layer")] == _expected(0.10)
    assert got[("HS", "last token", "all layers")] == _expected(0.05)
    assert got[("HS", "mean", "last layer")] == _expected(-0.20)
    assert got[("HS", "mean", "all layers")] == _expected(0.08)
    assert got[("RW", "last token", "")] == _expected(0.12)
    assert got[("RW", "mean", "")] == _expected(0.0)
    best = [r for r in cells if r[2] == "MoEE (best) (oracle)"]
    assert len(best) == 1 and best[0][5] == _expected(0.27) and best[0][6] == "MoEE-sum w=1"
    assert "it has seen the test labels" in text.split(TITLE)[1]
    assert "paper" not in cells[0]  # no published numbers without --compare-paper


def test_compare_paper_puts_table5_beside_and_marks_other_settings(tmp_path: Path) -> None:
    rows = (
        _rows()
        + _rows(prompt="none")
        + _rows(model="allenai/OLMoE-1B-7B-0924", tasks=["STS12", "STS13"])
    )
    scores = _scores(tmp_path, rows)
    options = ReportOptions(weight=1.0)
    built = build(scores=scores, options=options, compare_paper=True)
    (table,) = [t for t in built.tables if t.title == TITLE]
    frame = table.frame
    ours = frame[
        (frame["model"] == "deepseek-ai--deepseek-moe-16b-base") & (frame["prompt"] == "prompteol")
    ]
    paper = {
        (r.feature, r.pooling, r.layers): r.score_x100 for r in load_paper_table5().itertuples()
    }
    hs_all = ours[
        (ours["feature"] == "HS")
        & (ours["pooling"] == "last token")
        & (ours["layers"] == "all layers")
    ]
    assert hs_all["paper"].item() == f"{paper[('HS', 'last', 'all')]:.2f}"
    want = float(_expected(0.05)) - paper[("HS", "last", "all")]
    assert hs_all["diff"].item() == (f"+{want:.2f}" if want > 0 else f"{want:.2f}")
    best = ours[ours["feature"] == "MoEE (best) (oracle)"]
    assert best["paper"].item() == "71.75" and best["note"].item() == ""
    other = frame[frame["prompt"] == "none"]
    assert len(other) == 7 and (other["paper"] == "").all() and (other["diff"] == "").all()
    assert other["note"].str.contains("not in the paper's setting: prompt none").all()
    olmoe = frame[frame["model"] == "allenai--OLMoE-1B-7B-0924"]
    assert olmoe["note"].str.contains("model allenai--OLMoE-1B-7B-0924").all()
    assert olmoe["note"].str.contains("tasks STS12,STS13").all()
    assert olmoe["score"].str.endswith("†").all()  # 2 of the 5 tasks
    text = render(built, "markdown")
    assert TITLE in text and "| paper | diff | note |" in text
    assert TITLE in render(built, "latex").replace("\\_", "_")


def test_no_table5_without_a_layer_or_pooling_study(tmp_path: Path) -> None:
    plain = [r for r in _rows() if r["pooling"] == "last" and r["hs_layers"] == "last"]
    built = build(scores=_scores(tmp_path, plain), options=ReportOptions(), compare_paper=False)
    assert TITLE not in [t.title for t in built.tables]


def test_the_hs_layer_figure(tmp_path: Path) -> None:
    scores = _scores(tmp_path, _rows())
    paths = make_plots(scores=scores, options=ReportOptions(weight=1.0), out_dir=tmp_path / "plots")
    (figure,) = [p for p in paths if p.name.startswith("hs_layers_")]
    check_png(figure)
    from moee_pipeline.report.weight_rules import resolve_weights

    no_single = resolve_weights(scores, options=ReportOptions(weight=1.0))
    no_single = no_single[~no_single["hs_layers"].isin(["0", "1", "2"])]
    assert hs_layer_curves(no_single, tmp_path / "none") == []


@pytest.mark.parametrize("compare", [False, True])
def test_table5_through_the_cli(tmp_path: Path, compare: bool) -> None:
    from tests.support.cli import cli

    _scores(tmp_path, _rows())
    args = ["report", "--results", str(tmp_path), "--weight", "1"]
    code, out = cli(*args, *(["--compare-paper"] if compare else []))
    assert code == 0, out
    assert TITLE in out and ("| paper | diff | note |" in out) == compare
