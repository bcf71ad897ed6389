"""`moee report`: tables, weight selection and the paper comparison on synthetic scores.csv files.

Expected numbers are computed here by hand (plain Python over the rows we wrote), never with the
pandas code under test.
"""

from __future__ import annotations

import csv
import io
from pathlib import Path
from statistics import mean
from typing import Any

import pandas as pd
import pytest
from click.testing import CliRunner

from moee_pipeline.cli import main
from moee_pipeline.report import Format, weight_rules
from moee_pipeline.report import tables as report
from moee_pipeline.report.options import ReportOptions
from moee_pipeline.report.paper import SIX_TYPE_AVERAGE, TYPE_AVERAGE, load_paper, paper_model
from moee_pipeline.report.render import build_report
from tests.support.paths import SHARED

SHARED_PAPER = SHARED / "paper" / "moee_paper_results.csv"
OLMOE = "allenai/OLMoE-1B-7B-0924"
#: A scores.csv row as the tests write it: column -> value (str, float or None).
Row = dict[str, Any]
PAPER_TASKS = {
    "STS": ["STS12", "STS13", "STS14", "STS15", "STS16", "BIOSSES", "SICK-R", "STSBenchmark"],
    "Classification": [
        "TweetSentimentExtractionClassification",
        "EmotionClassification",
        "ToxicConversationsClassification",
    ],
    "PairClassification": ["TwitterURLCorpus", "TwitterSemEval2015"],
    "Clustering": ["TwentyNewsgroupsClustering", "MedrxivClusteringS2S"],
    "Reranking": ["AskUbuntuDupQuestions", "SciDocsRR", "StackOverflowDupQuestions"],
    "Summarization": ["SummEval"],
}


def row(task: str, score: float, **kw: object) -> Row:
    task_type = next(t for t, tasks in PAPER_TASKS.items() if task in tasks)
    base = {
        "model": OLMOE,
        "prompt": "prompteol",
        "method": "HS",
        "weight": "",
        "rw": "logits",
        "zscore": "auto",
        "pooling": "last",
        "layers": "all",
        "task": task,
        "task_type": task_type,
        "split": "test",
        "main_metric": "x",
        "main_score": score,
    }
    return {**base, **kw}


def write(tmp_path: Path, rows: list[Row]) -> Path:
    pd.DataFrame(rows).to_csv(tmp_path / "scores.csv", index=False)
    return tmp_path


def full_rows(method: str = "HS", offset: float = 0.0, **kw: object) -> list[Row]:
    """All 19 tasks with distinct scores: task i of the list scores 0.30 + 0.02 * i + offset."""
    tasks = [t for tasks in PAPER_TASKS.values() for t in tasks]
    return [
        row(t, round(0.30 + 0.02 * i + offset, 4), method=method, **kw) for i, t in enumerate(tasks)
    ]


def md_type_row(text: str, method: str, weight: str = "") -> list[str]:
    """Cells of the per-type markdown table row for one method."""
    section = text.split("## ")[1]
    for line in section.splitlines():
        cells = [c.strip() for c in line.strip("|").split("|")]
        if len(cells) > 3 and cells[2] == method and cells[3] == weight:
            return cells
    raise AssertionError(f"no row for {method} {weight}")


def test_type_averages_of_a_complete_run(tmp_path: Path) -> None:
    rows = full_rows()
    scores = report.load_scores(write(tmp_path, rows))
    text = build_report(scores=scores, options=ReportOptions(), fmt="markdown", compare_paper=False)
    by_type = {
        t: mean(r["main_score"] for r in rows if r["task_type"] == t) * 100 for t in PAPER_TASKS
    }
    six = mean(by_type.values())
    assert abs(six - mean(r["main_score"] for r in rows) * 100) > 0.5  # not the mean of 19 tasks
    cells = md_type_row(text, "HS")
    header = [c.strip() for c in text.split("## ")[1].splitlines()[2].strip("|").split("|")]
    for task_type, value in by_type.items():
        assert cells[header.index(task_type)] == f"{value:.2f}"
    assert cells[header.index("Average")] == f"{six:.2f}"
    assert report.DAGGER not in text.split("## ")[1]


def test_incomplete_types_are_marked_and_named(tmp_path: Path) -> None:
    rows = [row("STS12", 0.5), row("STS13", 0.7), row("EmotionClassification", 0.4)]
    scores = report.load_scores(write(tmp_path, rows))
    text = build_report(scores=scores, options=ReportOptions(), fmt="markdown", compare_paper=False)
    cells = md_type_row(text, "HS")
    assert cells[-3:] == ["60.00†", "40.00†", "50.00†"]
    assert "STS averages 2 of 8 tasks (STS12, STS13); missing STS14" in text
    assert "Classification averages 1 of 3 tasks (EmotionClassification)" in text
    assert "never scored: PairClassification, Clustering, Reranking, Summarization" in text


def test_a_task_only_one_row_has_marks_the_other(tmp_path: Path) -> None:
    rows = [*full_rows("HS"), *[r for r in full_rows("RW") if r["task"] != "SummEval"]]
    scores = report.load_scores(write(tmp_path, rows))
    table = report.type_table(weight_rules.resolve_weights(scores, options=ReportOptions()))
    keys = {k[2]: k for k, _ in table.covered}
    assert not report.incomplete(table, keys["HS"], "Summarization")
    assert report.incomplete(table, keys["RW"], "Summarization")
    assert report.incomplete(table, keys["RW"], "Average")
    assert not report.incomplete(table, keys["HS"], "Average")


def sweep_rows() -> list[Row]:
    """MoEE-sum at w 0.5/1/2 on STS12 (with validation rows) and STS13 (test only)."""
    test = {("STS12", 0.5): 0.60, ("STS12", 1): 0.70, ("STS12", 2): 0.65}
    test |= {("STS13", 0.5): 0.50, ("STS13", 1): 0.55, ("STS13", 2): 0.55}
    val = {0.5: 0.90, 1: 0.10, 2: 0.20}  # validation prefers 0.5; test prefers 1
    rows = [row(t, s, method="MoEE-sum", weight=w) for (t, w), s in test.items()]
    rows += [
        row("STS12", s, method="MoEE-sum", weight=w, split="validation") for w, s in val.items()
    ]
    return rows


def test_select_weight_on_validation_reports_test_at_that_weight(tmp_path: Path) -> None:
    scores = report.load_scores(write(tmp_path, sweep_rows()))
    options = ReportOptions(select_on="validation")
    rows = weight_rules.resolve_weights(scores, options=options).set_index("task")
    assert rows.loc["STS12", "weight"] == 0.5 and rows.loc["STS12", "main_score"] == 0.60
    assert rows.loc["STS12", "basis"] == "validation"
    # No validation rows: no pick at all, never a silent fallback to the test scores (oracle)
    assert "STS13" not in rows.index
    assert set(rows["weight_label"]) == {"best (validation)"}
    text = build_report(scores=scores, options=options, fmt="markdown", compare_paper=False)
    assert "| STS12 | 0.5 (validation) |" in text and "(oracle) |" not in text
    assert "no MoEE-sum row for STS13: no validation scores" in text
    assert md_type_row(text, "MoEE-sum", "best (validation)")[-2] == "60.00†"
    # the side-by-side table shows the oracle next to the validation pick, labelled
    side = text.split("## MoEE-sum weight rules side by side")[1]
    assert "| oracle w | oracle | validation w | validation |" in side
    assert "| STS12 | 1 | 70.00 | 0.5 | 60.00 |" in side and "| STS13 | 1 | 55.00 |  |  |" in side


def test_oracle_and_fixed_weights(tmp_path: Path) -> None:
    scores = report.load_scores(write(tmp_path, sweep_rows()))
    oracle = weight_rules.resolve_weights(scores, options=ReportOptions(select_on="test"))
    assert sorted(oracle["main_score"]) == [0.55, 0.70]
    assert set(oracle["weight_label"]) == {"best (oracle)"}
    fixed = weight_rules.resolve_weights(scores, options=ReportOptions(weight=2))
    assert sorted(fixed["main_score"]) == [0.55, 0.65] and set(fixed["weight_label"]) == {"2"}
    every = weight_rules.resolve_weights(scores, options=ReportOptions())
    assert len(every) == 6 and set(every["weight_label"]) == {"0.5", "1", "2"}
    with pytest.raises(
        report.ReportError, match=r"no MoEE-sum rows at weight 3; scored: 0\.5, 1, 2"
    ):
        weight_rules.resolve_weights(scores, options=ReportOptions(weight=3))


def published() -> dict[tuple[str, str, str, str], float]:
    path = SHARED_PAPER if SHARED_PAPER.is_file() else None
    source = path.open(encoding="utf-8") if path else io.StringIO(load_paper().to_csv(index=False))
    with source as handle:
        return {
            (
                r["model"],
                r["prompt"],
                r["method"],
                r["task"] if r["task"][0] != "(" else r["task_type"],
            ): float(r["score_x100"])
            for r in csv.DictReader(handle)
        }


def test_packaged_paper_numbers_equal_the_shared_copy() -> None:
    if not SHARED_PAPER.is_file():
        pytest.skip("../shared/paper is not present")
    packaged = load_paper()
    shared = pd.read_csv(SHARED_PAPER, keep_default_na=False)
    pd.testing.assert_frame_equal(packaged, shared)
    assert len(packaged) == 624 and set(packaged["method"]) == {
        "HS",
        "RW",
        "MoEE-concat",
        "MoEE-sum",
    }


def test_compare_paper_differences(tmp_path: Path) -> None:
    paper = published()
    tasks = [t for tasks in PAPER_TASKS.values() for t in tasks]
    rows = [row(t, paper[(OLMOE, "prompteol", "HS", t)] / 100) for t in tasks]
    rows[0]["main_score"] = round(float(rows[0]["main_score"]) + 0.01, 6)  # STS12 one point up
    scores = report.load_scores(write(tmp_path, rows))
    text = build_report(scores=scores, options=ReportOptions(), fmt="csv", compare_paper=True)
    table = pd.read_csv(io.StringIO(text), keep_default_na=False)
    cell = table.set_index(["task_type", "task"])
    assert cell.loc[("STS", "STS12"), "diff"] == pytest.approx(1.0, abs=1e-6)
    assert cell.loc[("STS", "STS13"), "diff"] == pytest.approx(0.0, abs=1e-6)
    assert cell.loc[("STS", TYPE_AVERAGE), "paper"] == paper[(OLMOE, "prompteol", "HS", "STS")]
    sts_ours = mean(paper[(OLMOE, "prompteol", "HS", t)] for t in PAPER_TASKS["STS"]) + 1 / 8
    assert cell.loc[("STS", TYPE_AVERAGE), "ours"] == pytest.approx(sts_ours, abs=1e-6)
    assert (
        cell.loc[("Average", SIX_TYPE_AVERAGE), "paper"]
        == paper[(OLMOE, "prompteol", "HS", "Average")]
    )
    assert len(table) == 1 + 6 + 19


def test_compare_paper_on_a_subset_uses_the_same_tasks(tmp_path: Path) -> None:
    paper = published()
    rows = [
        row(t, paper[(OLMOE, "none", "RW", t)] / 100 + 0.02, prompt="none", method="RW")
        for t in ("STS12", "STS13")
    ]
    scores = report.load_scores(write(tmp_path, rows))
    text = build_report(scores=scores, options=ReportOptions(), fmt="markdown", compare_paper=True)
    line = next(x for x in text.splitlines() if "| STS | (task-type average) |" in x)
    cells = [c.strip() for c in line.strip("|").split("|")]
    same = mean([paper[(OLMOE, "none", "RW", "STS12")], paper[(OLMOE, "none", "RW", "STS13")]])
    assert cells[-3] == f"{same:.2f}" and cells[-2] == "+2.00"
    assert "ours over 2/8 tasks (missing STS14" in cells[-1]
    assert "| Clustering | (task-type average) |  |" in text


def test_paper_model_mapping() -> None:
    known = ["allenai/OLMoE-1B-7B-0924", "Qwen/Qwen1.5-MoE-A2.7B"]
    assert paper_model("allenai/OLMoE-1B-7B-0924", known) == known[0]
    assert paper_model("/models/olmoe-1b-7b-0924/", known) == known[0]
    assert paper_model("Qwen--Qwen1.5-MoE-A2.7B", known) == known[1]
    assert paper_model("mistralai/Mixtral-8x7B-v0.1", known) is None


def test_csv_and_latex_formats(tmp_path: Path) -> None:
    rows = [
        *full_rows("HS"),
        *full_rows("MoEE-sum", 0.1, weight=1.0),
        *full_rows("MoEE-sum", 0.2, weight=2.0),
    ]
    scores = report.load_scores(write(tmp_path, rows))
    text = build_report(scores=scores, options=ReportOptions(), fmt="csv", compare_paper=False)
    table = pd.read_csv(io.StringIO(text), keep_default_na=False)
    assert list(table["weight"].astype(str)) == ["", "1", "2"]
    assert table.loc[2, "STS12"] == pytest.approx(50.0) and set(table["coverage"]) == {"complete"}
    hs_sts = mean(r["main_score"] for r in rows[:19] if r["task_type"] == "STS") * 100
    assert table.loc[0, "STS"] == pytest.approx(hs_sts)
    latex = build_report(scores=scores, options=ReportOptions(), fmt="latex", compare_paper=False)
    assert latex.count(r"\begin{tabular}") == 3 and "MoEE-sum" in latex  # + rules side by side
    assert r"TwitterSemEval2015 &" in latex and "allenai--OLMoE-1B-7B-0924" in latex


def test_cli_report_and_errors(tmp_path: Path) -> None:
    write(tmp_path, [row("STS12", 0.5), row("STS13", 0.7)])
    runner = CliRunner()
    out = tmp_path / "r.md"
    result = runner.invoke(main, ["report", "--results", str(tmp_path), "--out", str(out)])
    assert result.exit_code == 0, result.output
    # models are named by slug, as the cache and `moee ls` name them
    assert "| allenai--OLMoE-1B-7B-0924 | prompteol | HS |  | 60.00† | 60.00† |" in out.read_text()
    result = runner.invoke(main, ["report", "--results", str(tmp_path / "none")])
    assert result.exit_code == 1 and "no scores at" in result.output
    assert "Traceback" not in result.output
    (tmp_path / "bad").mkdir()
    pd.DataFrame({"model": ["m"]}).to_csv(tmp_path / "bad" / "scores.csv", index=False)
    result = runner.invoke(main, ["report", "--results", str(tmp_path / "bad")])
    assert result.exit_code == 1 and "lacks column(s) prompt, method" in result.output


def rule_rows() -> list[Row]:
    """Fixed weights on test and validation, an auto row, and settings unlike the paper's."""
    rows = sweep_rows()
    rows += [row(t, 0.58, method="MoEE-sum", weight=0.8, weight_rule="auto") for t in ("STS12",)]
    rows += [row("STS12", 0.5, method="RW", rw="softmax"), row("STS12", 0.4, method="RW")]
    rows += [row("STS12", 0.45, method="MoEE-concat", zscore="none")]
    return rows


@pytest.mark.parametrize("fmt", ["markdown", "latex", "csv"])
def test_no_unlabelled_oracle_in_any_format(tmp_path: Path, fmt: Format) -> None:
    scores = report.load_scores(write(tmp_path, rule_rows()))
    oracle = ReportOptions(select_on="test")
    text = build_report(scores=scores, options=oracle, fmt=fmt, compare_paper=True)
    picked = weight_rules.resolve_weights(scores, options=oracle)
    sums = picked[picked["method"] == "MoEE-sum"]
    assert set(sums["weight_label"]) == {"best (oracle)"}
    assert "best (oracle)" in text
    # every other rule: the only oracle shown is the labelled column of the side-by-side table
    for options in (
        ReportOptions(),
        ReportOptions(weight=1.0),
        ReportOptions(weight_rule="auto"),
        ReportOptions(select_on="validation"),
    ):
        text = build_report(scores=scores, options=options, fmt=fmt, compare_paper=False)
        assert "best (oracle)" not in text
        if fmt == "markdown":
            side = text.split("## MoEE-sum weight rules side by side")
            assert "(oracle" not in side[0] and "oracle:" in side[1]


def test_auto_rows_and_side_by_side(tmp_path: Path) -> None:
    scores = report.load_scores(write(tmp_path, rule_rows()))
    auto = weight_rules.resolve_weights(scores, options=ReportOptions(weight_rule="auto"))
    sums = auto[auto["method"] == "MoEE-sum"]
    assert list(sums["weight"]) == [0.8] and set(sums["weight_label"]) == {"auto"}
    side = weight_rules.rules_side_by_side(scores).set_index("task")
    assert side.loc["STS12", "oracle w"] == 1 and side.loc["STS12", "oracle"] == pytest.approx(70)
    assert side.loc["STS12", "validation w"] == 0.5
    assert side.loc["STS12", "validation"] == pytest.approx(60)
    assert side.loc["STS12", "auto w"] == 0.8 and side.loc["STS12", "auto"] == pytest.approx(58)
    with pytest.raises(report.ReportError, match="score with --weight auto"):
        weight_rules.resolve_weights(
            report.load_scores(write(tmp_path, sweep_rows())),
            options=ReportOptions(weight_rule="auto"),
        )


def test_compare_paper_needs_a_rule_and_lists_settings_unlike_the_paper(tmp_path: Path) -> None:
    write(tmp_path, rule_rows())
    runner = CliRunner()
    base = ["report", "--results", str(tmp_path), "--compare-paper"]
    result = runner.invoke(main, base)
    assert result.exit_code == 1 and "Traceback" not in result.output
    assert "--weight W, --weight-rule auto or --select-weight-on validation" in result.output
    result = runner.invoke(main, [*base, "--weight-rule", "auto"])
    assert result.exit_code == 0, result.output
    comparison = result.output.split("## Comparison with the paper")[1]
    assert "not comparable: " in comparison
    assert "RW: rw=softmax (paper logits)" in comparison
    assert "MoEE-concat: zscore=none (paper auto)" in comparison
    compared = [line for line in comparison.splitlines() if line.startswith("| allenai")]
    assert compared and not any("softmax" in line for line in compared)
    assert {line.split("|")[4].strip() for line in compared if "MoEE-sum" in line} == {"auto"}
    result = runner.invoke(main, [*base, "--weight", "1", "--select-weight-on", "validation"])
    assert result.exit_code == 1 and "use one of --weight, --select-weight-on" in result.output


def test_rows_of_other_provenance_stay_apart(tmp_path: Path) -> None:
    rows = [row("STS12", 0.5, quantization="nf4"), row("STS12", 0.6, quantization="none")]
    scores = report.load_scores(write(tmp_path, rows))
    text = build_report(scores=scores, options=ReportOptions(), fmt="markdown", compare_paper=False)
    assert "| quantization |" in text.split("## ")[1]
    assert md_like(text, "nf4")[-2:] == ["50.00†", "50.00†"]
    assert md_like(text, "none")[-2:] == ["60.00†", "60.00†"]


def md_like(text: str, needle: str) -> list[str]:
    section = text.split("## ")[1]
    line = next(x for x in section.splitlines() if f"| {needle} |" in x)
    return [c.strip() for c in line.strip().strip("|").split("|")]


def test_average_is_the_papers_six_types_only(tmp_path: Path) -> None:
    rows = full_rows()
    extra = {**row("STS12", 0.99), "task": "ArguAna", "task_type": "Retrieval"}
    scores = report.load_scores(write(tmp_path, [*rows, extra]))
    table = report.type_table(weight_rules.resolve_weights(scores, options=ReportOptions()))
    six = mean(
        mean(r["main_score"] for r in rows if r["task_type"] == t) * 100 for t in PAPER_TASKS
    )
    (record,) = table.values.to_dict("records")
    assert record["Retrieval"] == pytest.approx(99.0)
    assert record["Average"] == pytest.approx(six)  # the extra type is shown, not averaged
    key = tuple(table.values.loc[0, report.ROW_KEY])
    assert not report.incomplete(table, key, "Average")
    assert list(table.values.columns[-2:]) == ["Retrieval", "Average"]  # after the six
    assert "Average is the paper's: the mean of its six task types; Retrieval" in table.notes[0]


def test_reports_name_models_by_slug_and_still_find_the_papers(tmp_path: Path) -> None:
    paper = published()
    folder = "/models/OLMoE-1B-7B-0924"  # a local model folder, as older scores.csv recorded it
    tasks = [t for tasks in PAPER_TASKS.values() for t in tasks]
    rows = [
        row(t, paper[(OLMOE, "none", "HS", t)] / 100, prompt="none", model=folder) for t in tasks
    ]
    scores = report.load_scores(write(tmp_path, rows))
    assert set(scores["model"]) == {"OLMoE-1B-7B-0924"}  # the folder's name, as `moee ls` shows
    text = build_report(scores=scores, options=ReportOptions(), fmt="csv", compare_paper=True)
    table = pd.read_csv(io.StringIO(text), keep_default_na=False).set_index(["task_type", "task"])
    assert set(table["model"]) == {"OLMoE-1B-7B-0924"}
    assert table.loc[("STS", "STS12"), "paper"] == paper[(OLMOE, "none", "HS", "STS12")]
    assert table.loc[("STS", "STS12"), "diff"] == pytest.approx(0.0, abs=1e-6)


def test_a_scores_csv_that_does_not_parse_is_one_line_and_left_as_it_is(tmp_path: Path) -> None:
    """An old file holding NaN scores, and a file cut mid-row: refused before any number is
    read (pandas raised "Unable to parse string 'nan'" and a KeyError here)."""
    runner = CliRunner()
    write(tmp_path, [row("STS12", 0.5), {**row("STS13", 0.0), "main_score": "nan"}])
    before = (tmp_path / "scores.csv").read_bytes()
    assert b",nan" in before
    result = runner.invoke(main, ["report", "--results", str(tmp_path)])
    assert result.exit_code == 1 and isinstance(result.exception, SystemExit), result.output
    last = result.output.strip().splitlines()[-1]
    assert last.endswith(
        "line 3: main_score 'nan' is not a number (an older moee-pipeline wrote it): delete that"
        " line or move the file away"
    )
    assert (tmp_path / "scores.csv").read_bytes() == before
    write(tmp_path, [row("STS12", 0.5), row("STS13", 0.7)])
    cut = (tmp_path / "scores.csv").read_bytes()[:-8]
    (tmp_path / "scores.csv").write_bytes(cut)
    result = runner.invoke(main, ["report", "--results", str(tmp_path)])
    assert result.exit_code == 1 and isinstance(result.exception, SystemExit), result.output
    assert "line 3: has " in result.output and "(cut short or edited?)" in result.output


@pytest.mark.parametrize("bad", ["nan", "inf", "-1"])
def test_report_weight_must_be_one_scoring_could_use(bad: str, tmp_path: Path) -> None:
    write(tmp_path, [row("STS12", 0.5)])
    result = CliRunner().invoke(main, ["report", "--results", str(tmp_path), "--weight", bad])
    assert result.exit_code == 1, result.output
    assert "--weight: weight" in result.output and "use a number from 0 to" in result.output


@pytest.mark.parametrize("option", ["--out", "--plots"])
def test_report_outputs_inside_the_cache_are_refused(
    option: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write(tmp_path, [row("STS12", 0.5)])
    cache = tmp_path / "cache"
    monkeypatch.setenv("MOEE_CACHE_DIR", str(cache))
    target = cache / "features" / "model=x" / ("t.md" if option == "--out" else "figures")
    result = CliRunner().invoke(main, ["report", "--results", str(tmp_path), option, str(target)])
    assert result.exit_code == 1, result.output
    assert "is inside the cache's features folder" in result.output.strip().splitlines()[-1]
    assert not (cache / "features").exists()
