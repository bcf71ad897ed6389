"""Validation splits end to end: extract them, score them, pick MoEE-sum's weight on them."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from moee_pipeline.cache import layout, store
from tests.support.cli import cli_ok
from tests.support.scores import read_scores


@pytest.mark.slow
@pytest.mark.integration
def test_weight_picked_on_validation_without_test_labels(
    tiny_model: Callable[[str], Path], mteb_data: Path, tmp_path: Path
) -> None:
    model, cache, results = str(tiny_model("olmoe")), tmp_path / "cache", tmp_path / "results"
    common = ["--model", model, "--cache-dir", str(cache), "--tasks", "STSBenchmark,BIOSSES"]
    cli_ok("extract", *common, "--data-dir", str(mteb_data))
    folder = layout.task_dir(cache, model=model, prompt_id="none", task="STSBenchmark")
    test_only = store.read_manifest(folder)
    assert test_only is not None and test_only["splits"] == ["test"]

    # asking for validation too extends the complete entry with the missing texts only
    out = cli_ok("extract", *common, "--data-dir", str(mteb_data), "--splits", "test,validation")
    grown = store.read_manifest(folder)
    assert grown is not None and grown["splits"] == ["test", "validation"]
    assert grown["new_rows"] == grown["rows"] - test_only["rows"] > 0
    assert "BIOSSES [none]" in out and "already complete" in out.split("BIOSSES [none]")[1]

    cli_ok("score", *common, "--split", "test", "--split", "validation",
           "--weight", "0.5", "--weight", "2", "--output", str(results))  # fmt: skip
    rows = read_scores(results / "scores.csv")
    splits = {(r["task"], r["split"]) for r in rows}
    assert splits == {("STSBenchmark", "test"), ("STSBenchmark", "validation"), ("BIOSSES", "test")}

    report = cli_ok("report", "--results", str(results), "--select-weight-on", "validation")
    chosen_table = report.split("## MoEE-sum weight chosen per task")[1].split("## ")[0]
    chosen = {
        line.split("|")[1].strip(): line.split("|")[2].strip()
        for line in chosen_table.splitlines()
        if line.startswith("| STSBenchmark") or line.startswith("| BIOSSES")
    }
    on_validation = [r for r in rows if r["task"] == "STSBenchmark" and r["split"] == "validation"]
    val = {r["weight"]: float(r["main_score"]) for r in on_validation if r["weight"]}
    best = min(val, key=lambda w: (-val[w], float(w)))
    assert chosen["STSBenchmark"].startswith(best) and "validation" in chosen["STSBenchmark"]
    # no validation split: no pick at all (a test-score pick exists only as a labelled oracle)
    assert "BIOSSES" not in chosen and "no MoEE-sum row for BIOSSES" in report
