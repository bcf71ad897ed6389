"""Concurrent writers: scoring runs into one scores.csv keep every row; one extraction per entry."""

from __future__ import annotations

import multiprocessing
import os
import subprocess
import sys
import textwrap
from collections.abc import Callable
from pathlib import Path

import pytest
from click.testing import CliRunner

from moee_pipeline.cache import layout, parts, scores
from moee_pipeline.cli import main
from tests.support.scores import read_scores


def _rows(tag: str, n: int) -> list[dict[str, str]]:
    return [
        {
            "model": "m",
            "prompt": tag,
            "method": "RW",
            "weight": "",
            "rw": "logits",
            "zscore": "auto",
            "pooling": "last",
            "layers": "all",
            "task": f"T{i}",
            "task_type": "STS",
            "split": "test",
            "main_metric": "cosine_spearman",
            "main_score": str(i / n),
        }
        for i in range(n)
    ]


def _merge(path: str, tag: str, n: int, barrier: multiprocessing.synchronize.Barrier) -> None:
    rows = _rows(tag, n)
    barrier.wait()
    scores.merge_rows(Path(path), rows)


@pytest.mark.slow
def test_two_concurrent_merges_into_a_large_scores_csv_keep_all_rows(tmp_path: Path) -> None:
    path = tmp_path / "scores.csv"
    scores.merge_rows(path, _rows("old", 200_000))
    ctx = multiprocessing.get_context("spawn")
    for attempt in range(2):
        barrier = ctx.Barrier(2)
        procs = [
            ctx.Process(target=_merge, args=(str(path), f"run{attempt}{side}", 500, barrier))
            for side in "ab"
        ]
        for p in procs:
            p.start()
        for p in procs:
            p.join(120)
            assert p.exitcode == 0
    prompts = [r["prompt"] for r in read_scores(path)]
    assert prompts.count("old") == 200_000
    for attempt in range(2):
        for side in "ab":
            assert prompts.count(f"run{attempt}{side}") == 500, (attempt, side)


HOLDER = """
import sys, time
from filelock import FileLock
with FileLock(sys.argv[1]):
    print("holding", flush=True)
    time.sleep(600)
"""


@pytest.mark.slow
def test_a_second_extraction_of_one_entry_is_refused_until_the_first_ends(
    tiny_model: Callable[[str], Path], tmp_path: Path
) -> None:
    from moee_pipeline.extract.entries import entry_lock_path  # torch: not in merge workers

    model, cache = tiny_model("olmoe"), tmp_path / "cache"
    folder = layout.task_dir(cache, model=str(model), prompt_id="none", task="MoeeToySTS")
    holder = subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(HOLDER), str(entry_lock_path(folder, shard=(0, 1)))],
        stdout=subprocess.PIPE,
        text=True,
        env=os.environ.copy(),
    )
    args = ["extract", "--model", str(model), "--tasks", "MoeeToySTS", "--cache-dir", str(cache)]
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "holding"
        result = CliRunner().invoke(main, args)
        assert result.exit_code != 0 and "Traceback" not in result.output
        last = result.output.strip().splitlines()[-1]
        assert last.startswith("Error: another `moee extract` is writing"), result.output
        assert "--shard I/N" in last
        assert parts.part_files(folder) == []  # it did none of the work
    finally:
        holder.kill()  # a killed holder releases its lock
        holder.wait()
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
