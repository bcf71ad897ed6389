"""Faults: kill -9 at every write point, a full disk at every write point, a flipped byte.

Each write point pauses (the tests' audit hook, tests/support/fault_hook.py) with its temp
complete on disk; the test then kills the process with SIGKILL, checks that nothing looks
complete that is not, and reruns.
"""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from moee_pipeline.cache import files, layout, parts, store
from tests.support import fault_hook
from tests.support.cli import cli
from tests.support.fault_hook import Faults
from tests.support.scores import read_scores

TASK = "MoeeToySTS"


def extract_args(model: Path, cache: Path) -> list[str]:
    return ["extract", "--model", str(model), "--tasks", TASK, "--cache-dir", str(cache),
            "--rows-per-shard", "20"]  # fmt: skip


def kill_at(point: str, args: list[str]) -> str:
    """Run `moee <args>` until it pauses at `point`, then SIGKILL it; its stderr so far."""
    env = fault_hook.child_env(f"{point}:pause")  # the CLI and its recording child
    proc = subprocess.Popen(
        [sys.executable, "-m", "moee_pipeline", *args],
        stderr=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        text=True,
        env=env,
    )
    watchdog = threading.Timer(240, proc.kill)
    watchdog.start()
    seen = []
    try:
        assert proc.stderr is not None
        for line in proc.stderr:
            seen.append(line)
            if fault_hook.PAUSED in line:
                break
    finally:
        proc.kill()
        proc.wait()
        watchdog.cancel()
    assert any(fault_hook.PAUSED in line for line in seen), "".join(seen)[-2000:]
    return "".join(seen)


def entry(cache: Path, model: Path) -> Path:
    return layout.task_dir(cache, model=str(model), prompt_id="none", task=TASK)


@pytest.mark.slow
@pytest.mark.parametrize("point", ["part", "manifest", "snapshot"])
def test_kill_9_while_extracting_then_rerun_completes(
    point: str, toy_cache: tuple[Path, Path], tmp_path: Path
) -> None:
    model, reference = toy_cache
    cache = tmp_path / "cache"
    kill_at(point, extract_args(model, cache))
    folder = entry(cache, model)
    assert store.read_manifest(folder) is None  # never marked complete
    # the snapshot is written by the recording child: it must stop by itself with its parent
    deadline = time.monotonic() + 20
    while not (temps := files.stale_temps(folder) + files.stale_temps(cache / "tasks")):
        if time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert temps, "the killed writer's temp is recognisable"
    if point == "snapshot":
        assert not (cache / "tasks" / TASK).exists()
    code, out = cli("verify", "--cache-dir", str(cache))
    assert code == 1 and "left by a killed run" in out, out
    code, out = cli(*extract_args(model, cache))
    assert code == 0, out
    assert not files.stale_temps(folder) and not files.stale_temps(cache / "tasks")
    code, out = cli("verify", "--cache-dir", str(cache))
    assert code == 0, out
    got = store.read_features(cache, model=str(model), prompt_id="none", task=TASK)
    want = store.read_features(reference, model=str(model), prompt_id="none", task=TASK)
    assert sorted(got.text_ids) == sorted(want.text_ids)


@pytest.mark.slow
def test_kill_9_while_merging_scores_keeps_the_old_file(
    toy_cache: tuple[Path, Path], tmp_path: Path
) -> None:
    model, cache = toy_cache
    out = tmp_path / "results"
    base = ["score", "--model", str(model), "--cache-dir", str(cache), "--output", str(out)]
    code, text = cli(*base, "--method", "HS")
    assert code == 0, text
    before = (out / "scores.csv").read_bytes()
    kill_at("scores", [*base, "--method", "RW"])
    assert (out / "scores.csv").read_bytes() == before
    assert files.stale_temps(out)
    code, text = cli(*base, "--method", "RW")
    assert code == 0, text
    assert not files.stale_temps(out)
    assert sorted(r["method"] for r in read_scores(out / "scores.csv")) == ["HS", "RW"]


@pytest.mark.slow
@pytest.mark.parametrize("point", ["part", "manifest", "snapshot"])
def test_full_disk_while_extracting_is_one_line_and_rerun_completes(
    point: str,
    toy_cache: tuple[Path, Path],
    tmp_path: Path,
    faults: Faults,
) -> None:
    model, _ = toy_cache
    cache = tmp_path / "cache"
    faults.arm(point, "enospc")
    code, out = cli(*extract_args(model, cache))
    assert code != 0 and "Traceback" not in out
    assert out.strip().splitlines()[-1].startswith("Error: [Errno 28] No space left on device")
    folder = entry(cache, model)
    assert store.read_manifest(folder) is None
    assert not list(cache.rglob(f"*{files.TEMP_SUFFIX}"))  # no temp survives
    if point == "part":
        assert parts.part_files(folder) == []  # no part that looks complete
    faults.clear()
    code, out = cli(*extract_args(model, cache))
    assert code == 0, out
    code, out = cli("verify", "--cache-dir", str(cache))
    assert code == 0, out


@pytest.mark.slow
@pytest.mark.parametrize("point", ["scores", "results"])
def test_full_disk_while_scoring_is_one_line_and_rerun_completes(
    point: str,
    toy_cache: tuple[Path, Path],
    tmp_path: Path,
    faults: Faults,
) -> None:
    model, cache = toy_cache
    out = tmp_path / "results"
    args = ["score", "--model", str(model), "--cache-dir", str(cache), "--output", str(out)]
    faults.arm(point, "enospc")
    code, text = cli(*args, "--method", "HS")
    assert code != 0 and "Traceback" not in text
    assert "No space left on device" in text.strip().splitlines()[-1]
    assert not (out / "scores.csv").exists()
    assert not list(out.rglob(f"*{files.TEMP_SUFFIX}"))
    faults.clear()
    code, text = cli(*args, "--method", "HS")
    assert code == 0, text
    assert [r["method"] for r in read_scores(out / "scores.csv")] == ["HS"]
