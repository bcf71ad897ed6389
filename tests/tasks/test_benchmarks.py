"""Whole MTEB benchmarks by name: their tasks, the refusal of types we do not score, and the
record of what --skip-unsupported left out (written by `moee score`, noted by `moee report`)."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import mteb
import pytest

from moee_pipeline.cache.skipped import SKIPPED_FILE, merge_skipped, read_skipped
from moee_pipeline.tasks.benchmarks import benchmark_tasks
from moee_pipeline.tasks.registry import TaskError
from moee_pipeline.vocabulary import SUPPORTED_TASK_TYPES
from tests.support.cli import cli

MIXED = "MTEB(Europe, v1)"  # BitextMining, InstructionReranking, MultilabelClassification too


def test_a_benchmark_of_supported_types_gives_all_its_tasks_in_order() -> None:
    chosen = benchmark_tasks("MTEB(eng, v2)")
    expected = [t.metadata.name for t in mteb.get_benchmark("MTEB(eng, v2)").tasks]
    assert list(chosen.tasks) == expected and len(expected) == 41 and not chosen.skipped
    only = benchmark_tasks("MTEB(eng, v2)", task_types=["Retrieval"])
    assert len(only.tasks) == 10 and "ArguAna" in only.tasks


def test_unsupported_types_are_refused_in_one_line_naming_them() -> None:
    with pytest.raises(TaskError) as error:
        benchmark_tasks(MIXED)
    line = str(error.value)
    assert "\n" not in line and "--skip-unsupported" in line
    assert "BitextMining, InstructionReranking, MultilabelClassification" in line
    assert "12 task(s)" in line


def test_skip_unsupported_leaves_them_out_and_names_them() -> None:
    chosen = benchmark_tasks(MIXED, skip_unsupported=True)
    kinds = {t.metadata.name: t.metadata.type for t in mteb.get_benchmark(MIXED).tasks}
    assert set(chosen.skipped) == {t for t, k in kinds.items() if k not in SUPPORTED_TASK_TYPES}
    assert Counter(chosen.skipped.values()) == {
        "BitextMining": 7, "InstructionReranking": 3, "MultilabelClassification": 2
    }  # fmt: skip
    assert len(chosen.tasks) + len(chosen.skipped) == len(kinds)


def test_an_unknown_benchmark_suggests_close_names() -> None:
    with pytest.raises(TaskError, match=r"unknown benchmark 'MTEB\(eng, v3\)': did you mean"):
        benchmark_tasks("MTEB(eng, v3)")


def test_extract_refuses_a_mixed_benchmark_before_any_model_loads(tmp_path: Path) -> None:
    code, output = cli("extract", "--model", str(tmp_path / "no-such-model"),
                       "--benchmark", MIXED, "--cache-dir", str(tmp_path / "cache"))  # fmt: skip
    errors = [line for line in output.splitlines() if line.startswith("Error:")]
    assert code != 0 and len(errors) == 1 and "we do not score" in errors[0]  # not the model's
    assert not (tmp_path / "cache").exists()


def test_skip_unsupported_needs_a_benchmark_and_excludes_tasks(tmp_path: Path) -> None:
    code, output = cli("score", "--skip-unsupported", "--cache-dir", str(tmp_path))
    assert code != 0 and "--skip-unsupported needs --benchmark" in output
    code, output = cli("score", "--benchmark", "BEIR", "--tasks", "SciFact")
    assert code != 0 and "give one of them" in output


def test_the_skipped_record_merges_across_runs(tmp_path: Path) -> None:
    assert read_skipped(tmp_path) == {}
    merge_skipped(tmp_path, {})
    assert not (tmp_path / SKIPPED_FILE).exists()
    merge_skipped(tmp_path, {"BUCC": "BitextMining"})
    merge_skipped(tmp_path, {"Tatoeba": "BitextMining"})
    assert read_skipped(tmp_path) == {"BUCC": "BitextMining", "Tatoeba": "BitextMining"}
