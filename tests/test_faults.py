"""Faults: kill -9 at every write point, a full disk at every write point, a flipped byte.

Each write point pauses (the tests' audit hook, tests/fault_hook.py) with its temp complete on
disk; the test then kills the process with SIGKILL, checks that nothing looks complete that is
not, and reruns.
"""

from __future__ import annotations

import builtins
import csv
import errno
import io
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from moee_pipeline.cache import files, layout, parts, store
from moee_pipeline.cli import main
from tests import fault_hook
from tests.fault_hook import Faults

TASK = "MoeeToySTS"


def cli(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(main, list(args))
    return result.exit_code, result.output


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


def rows_of(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as handle:
        return list(csv.DictReader(handle))


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
    model, reference = toy_cache
    cache, out = tmp_path / "cache", tmp_path / "results"
    shutil.copytree(reference, cache)
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
    assert sorted(r["method"] for r in rows_of(out / "scores.csv")) == ["HS", "RW"]


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
    assert [r["method"] for r in rows_of(out / "scores.csv")] == ["HS"]


class _FullDisk:
    """A file opened for writing on a full disk: open made (or emptied) it, every write fails."""

    def __init__(self, handle: Any) -> None:
        self._handle = handle

    def write(self, data: object) -> int:
        raise OSError(errno.ENOSPC, "No space left on device (test)")

    def fileno(self) -> int:  # no fast copy around `write` (shutil's sendfile)
        raise OSError(errno.EBADF, "no file descriptor (test)")

    def __getattr__(self, name: str) -> Any:
        return getattr(self._handle, name)

    def __enter__(self) -> _FullDisk:
        return self

    def __exit__(self, *exc: object) -> None:
        self._handle.close()


def full_disk_under(monkeypatch: pytest.MonkeyPatch, folder: Path) -> None:
    """Every file opened for writing under `folder` from now on behaves as on a full disk:
    the open succeeds (creating or truncating it, as the OS does), each write fails ENOSPC."""
    real = io.open

    def fake(file: Any, mode: str = "r", *args: Any, **kwargs: Any) -> Any:
        handle = real(file, mode, *args, **kwargs)
        writing = any(flag in mode for flag in "wax+")
        inside = isinstance(file, str | Path) and Path(file).resolve().is_relative_to(folder)
        return _FullDisk(handle) if writing and inside else handle

    monkeypatch.setattr(io, "open", fake)
    monkeypatch.setattr(builtins, "open", fake)


def _tree(root: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(root)): p.read_bytes()
        for p in sorted(root.rglob("*"))
        if p.is_file() and not p.name.endswith(".lock")
    }


def _scored_hs(toy_cache: tuple[Path, Path], out: Path) -> tuple[list[str], dict[str, bytes]]:
    """Score HS into `out` once: the score command's arguments and the files it wrote."""
    model, cache = toy_cache
    args = ["score", "--model", str(model), "--cache-dir", str(cache), "--output", str(out)]
    code, text = cli(*args, "--method", "HS")
    assert code == 0, text
    return args, _tree(out)


@pytest.mark.slow
def test_full_disk_while_writing_results_leaves_the_old_files_or_none(
    toy_cache: tuple[Path, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A real full disk fails inside the writer (mteb's result files, scores.csv), not at the
    rename: every file under --output must stay as it was, and no new one may appear half."""
    out = tmp_path / "results"
    args, before = _scored_hs(toy_cache, out)
    with monkeypatch.context() as patch:
        full_disk_under(patch, out.resolve())
        for method in ("HS", "RW"):  # an existing result file, then a new one
            code, text = cli(*args, "--method", method)
            assert code == 1 and "Traceback" not in text, text
            assert "No space left on device" in text.strip().splitlines()[-1], text
            assert _tree(out) == before  # the old files, whole; nothing new, not even empty
    code, text = cli(*args, "--method", "RW")
    assert code == 0, text
    assert sorted(r["method"] for r in rows_of(out / "scores.csv")) == ["HS", "RW"]
    assert len(list(out.rglob("MoeeToySTS.json"))) == 2
    assert not list(out.rglob(f"*{files.TEMP_SUFFIX}"))


@pytest.mark.slow
def test_kill_9_while_writing_an_mteb_result_keeps_the_old_file(
    toy_cache: tuple[Path, Path], tmp_path: Path
) -> None:
    out = tmp_path / "results"
    base, before = _scored_hs(toy_cache, out)
    kill_at("results", [*base, "--method", "HS"])
    left = {name: data for name, data in _tree(out).items() if files.TEMP_SUFFIX not in name}
    assert left == before  # the temps aside, every file as it was
    code, text = cli(*base, "--method", "HS")
    assert code == 0, text
    assert not list(out.rglob(f"*{files.TEMP_SUFFIX}"))  # the killed run's temps are gone


def test_full_disk_while_writing_a_report_leaves_the_old_table_and_figures(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from moee_pipeline.cache.scores import merge_rows

    base = {"model": "m", "prompt": "none", "rw": "logits", "zscore": "auto", "pooling": "last",
            "layers": "all", "task": "STS12", "task_type": "STS", "split": "test",
            "main_metric": "cosine_spearman"}  # fmt: skip
    rows = [{**base, "method": "HS", "main_score": "0.5"}]
    rows += [
        {**base, "method": "MoEE-sum", "weight": w, "weight_rule": "fixed", "main_score": s}
        for w, s in (("0.5", "0.55"), ("2", "0.6"))
    ]
    merge_rows(tmp_path / "scores.csv", rows)
    out = tmp_path / "report"
    args = ["report", "--results", str(tmp_path), "--out", str(out / "t.md"),
            "--plots", str(out / "figures")]  # fmt: skip
    code, text = cli(*args)
    assert code == 0, text
    before = _tree(out)
    assert "t.md" in before and any(name.endswith(".png") for name in before)
    with monkeypatch.context() as patch:
        full_disk_under(patch, out.resolve())
        code, text = cli(*args)
        assert code == 1 and "No space left on device" in text.strip().splitlines()[-1], text
        assert _tree(out) == before
