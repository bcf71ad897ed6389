"""Faults: kill -9 at every write point, a full disk at every write point, a flipped byte, and
Ctrl-C or kill -9 during `moee extract --overwrite`.

Each write point pauses (the tests' audit hook, tests/support/fault_hook.py) with its temp
complete on disk; the test then kills the process with SIGKILL, checks that nothing looks
complete that is not, and reruns.
"""

from __future__ import annotations

import builtins
import errno
import io
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

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


def signal_at(
    point: str, args: list[str], *, action: str = "pause", sig: int = signal.SIGKILL
) -> tuple[int, str]:
    """Run `moee <args>` until it pauses (or stalls) at `point`, then send it `sig`; its exit
    status and its stderr (up to the pause for SIGKILL, to its end otherwise)."""
    env = fault_hook.child_env(f"{point}:{action}")  # the CLI and its recording child
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
                proc.send_signal(sig)
                break
        if sig != signal.SIGKILL:  # it handles the signal: read what it says on its way out
            seen.append(proc.communicate(timeout=120)[1])
    finally:
        proc.kill()
        proc.wait()
        watchdog.cancel()
    assert any(fault_hook.PAUSED in line for line in seen), "".join(seen)[-2000:]
    return proc.returncode, "".join(seen)


def kill_at(point: str, args: list[str]) -> str:
    """Run `moee <args>` until it pauses at `point`, then SIGKILL it; its stderr so far."""
    return signal_at(point, args)[1]


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
    assert sorted(r["method"] for r in read_scores(out / "scores.csv")) == ["HS", "RW"]
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


# ---------------------------------------------------------------------------------------
# --overwrite: the old entry stays readable until the new one is complete, whatever stops it
# ---------------------------------------------------------------------------------------

#: (extra arguments of the overwriting run, the entry files it replaces) per layout.
LAYOUTS = {"unsharded": [], "sharded": ["--shard", "1/2"]}


def entry_files(folder: Path) -> dict[str, bytes]:
    """Every file of an entry folder by name, with its bytes (locks are beside it)."""
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir()) if p.is_file()}


def sharded_cache(model: Path, tmp_path: Path) -> Path:
    """A cache whose toy entry was made by two shards (complete: both finished)."""
    cache = tmp_path / "sharded-cache"
    for shard in ("0/2", "1/2"):
        code, out = cli(*extract_args(model, cache), "--shard", shard)
        assert code == 0, out
    assert store.read_manifest(entry(cache, model)) is not None
    return cache


def overwrite_setup(
    layout_name: str, toy_cache: tuple[Path, Path], tmp_path: Path
) -> tuple[Path, Path, list[str], dict[str, bytes]]:
    """(model, cache, the overwriting run's arguments, the entry's files before it)."""
    model, reference = toy_cache
    if layout_name == "sharded":
        cache = sharded_cache(model, tmp_path)
    else:
        cache = tmp_path / "cache"
        shutil.copytree(reference, cache)
    args = [*extract_args(model, cache), *LAYOUTS[layout_name], "--overwrite"]
    return model, cache, args, entry_files(entry(cache, model))


def assert_old_entry_intact(model: Path, cache: Path, before: dict[str, bytes]) -> None:
    folder = entry(cache, model)
    assert entry_files(folder) == before  # every part and manifest, byte for byte
    features = store.read_features(cache, model=str(model), prompt_id="none", task=TASK)
    assert len(features.text_ids) == len(set(features.text_ids)) > 0
    code, out = cli("ls", "--cache-dir", str(cache))
    assert code == 0 and "complete" in out and "partial" not in out, out


def staged(cache: Path) -> list[Path]:
    """The overwrite builds (and swapped-out entries) under the cache's staging folder."""
    return sorted((cache / layout.STAGING).glob(f"model=*/prompt=*/*{files.TEMP_SUFFIX}"))


@pytest.mark.slow
@pytest.mark.parametrize("layout_name", list(LAYOUTS))
def test_ctrl_c_during_overwrite_keeps_the_old_entry(
    layout_name: str, toy_cache: tuple[Path, Path], tmp_path: Path
) -> None:
    """A real SIGINT once the new entry's first part is being written (progress started)."""
    model, cache, args, before = overwrite_setup(layout_name, toy_cache, tmp_path)
    code, err = signal_at("part", args, action="stall", sig=signal.SIGINT)
    paused = next(line for line in err.splitlines() if fault_hook.PAUSED in line)
    assert layout.STAGING in paused  # the new part was being written beside the entry
    assert code == 1 and "Aborted!" in err and "Traceback" not in err, err
    assert_old_entry_intact(model, cache, before)
    assert not staged(cache)  # Ctrl-C took its unfinished build with it
    code, out = cli("verify", "--cache-dir", str(cache))
    assert code == 0, out


@pytest.mark.slow
@pytest.mark.parametrize("point", ["part", "manifest"])
@pytest.mark.parametrize("layout_name", list(LAYOUTS))
def test_kill_9_during_overwrite_keeps_the_old_entry_and_the_temp_is_cleaned(
    point: str, layout_name: str, toy_cache: tuple[Path, Path], tmp_path: Path
) -> None:
    model, cache, args, before = overwrite_setup(layout_name, toy_cache, tmp_path)
    kill_at(point, args)
    assert_old_entry_intact(model, cache, before)
    (build,) = staged(cache)  # recognisable: a temp name with the dead writer's pid
    assert files.stale_temps(build.parent) == [build]
    code, out = cli("verify", "--cache-dir", str(cache))
    assert code == 1 and f"{build}: unfinished build of a killed --overwrite" in out, out
    code, out = cli("verify", "--cache-dir", str(cache), "--repair")
    assert code == 1 and f"moved {build} -> " in out, out
    assert not staged(cache) and list((cache / layout.QUARANTINE).rglob(build.name))
    assert_old_entry_intact(model, cache, before)
    assert cli("verify", "--cache-dir", str(cache))[0] == 0
    # killed again; this time the rerun itself cleans up and replaces the entry
    kill_at(point, args)
    code, out = cli(*args)
    assert code == 0, out
    assert not staged(cache) and not (cache / layout.STAGING).exists()
    after = entry_files(entry(cache, model))
    assert after != before  # a new entry (new manifest), holding every text once
    code, out = cli("verify", "--cache-dir", str(cache))
    assert code == 0, out
    got = store.read_features(cache, model=str(model), prompt_id="none", task=TASK)
    want = store.read_features(toy_cache[1], model=str(model), prompt_id="none", task=TASK)
    assert sorted(got.text_ids) == sorted(want.text_ids)


@pytest.mark.slow
@pytest.mark.parametrize("layout_name", list(LAYOUTS))
def test_kill_9_in_the_swap_itself_is_finished_by_the_next_run(
    layout_name: str, toy_cache: tuple[Path, Path], tmp_path: Path
) -> None:
    """Killed between the renames of the swap: the new entry is complete, so it goes in."""
    model, cache, args, before = overwrite_setup(layout_name, toy_cache, tmp_path)
    kill_at("swap", args)
    code, out = cli("verify", "--cache-dir", str(cache))
    assert code == 1 and "killed before it was swapped in" in out, out
    plain = [a for a in args if a != "--overwrite"]
    code, out = cli(*plain)  # a plain rerun (no --overwrite) finishes the swap first
    assert code == 0 and "already complete" in out, out
    assert not staged(cache)
    assert entry_files(entry(cache, model)) != before
    code, out = cli("verify", "--cache-dir", str(cache))
    assert code == 0, out
    got = store.read_features(cache, model=str(model), prompt_id="none", task=TASK)
    want = store.read_features(toy_cache[1], model=str(model), prompt_id="none", task=TASK)
    assert sorted(got.text_ids) == sorted(want.text_ids)


@pytest.mark.slow
def test_full_disk_in_the_swap_puts_the_old_entry_back(
    toy_cache: tuple[Path, Path], tmp_path: Path, faults: Faults
) -> None:
    model, cache, args, before = overwrite_setup("unsharded", toy_cache, tmp_path)
    faults.arm("swap", "enospc")
    code, out = cli(*args)
    assert code != 0 and "Traceback" not in out
    assert out.strip().splitlines()[-1].startswith("Error: [Errno 28] No space left on device")
    assert_old_entry_intact(model, cache, before)
    assert not staged(cache)


@pytest.mark.slow
def test_kill_9_while_completing_an_entry_keeps_it_readable(
    toy_cache: tuple[Path, Path], tmp_path: Path
) -> None:
    """A complete entry that lacks texts (a part gone with its record) is extended beside too."""
    model, reference = toy_cache
    cache = tmp_path / "cache"
    shutil.copytree(reference, cache)
    folder = entry(cache, model)
    manifest = store.read_manifest(folder)
    assert manifest is not None
    gone = manifest["parts"].pop("part-00001.parquet")
    manifest["rows"] -= gone["rows"]
    store.write_json_atomic(folder / store.MANIFEST, manifest)
    (folder / "part-00001.parquet").unlink()
    before = entry_files(folder)
    kill_at("part", extract_args(model, cache))
    assert entry_files(folder) == before  # still the readable (if incomplete) entry
    assert store.read_features(cache, model=str(model), prompt_id="none", task=TASK).text_ids
    (build,) = staged(cache)
    code, out = cli("verify", "--cache-dir", str(cache))
    assert code == 1 and f"{build}: unfinished build" in out and "lack 20 of" in out, out
    code, out = cli(*extract_args(model, cache))
    assert code == 0 and "20 new rows" in out, out
    assert not staged(cache)
    assert cli("verify", "--cache-dir", str(cache))[0] == 0


@pytest.mark.slow
def test_kill_9_while_extending_to_every_layer_keeps_the_entry_readable(
    toy_cache: tuple[Path, Path], tmp_path: Path
) -> None:
    """`--hs-layers all --extend` builds beside the entry: a kill -9 midway leaves the entry
    as it was, byte for byte; the rerun extends it with every row once and every value kept."""
    model, reference = toy_cache
    cache = tmp_path / "cache"
    shutil.copytree(reference, cache)
    folder = entry(cache, model)
    before = entry_files(folder)
    args = [*extract_args(model, cache), "--hs-layers", "all", "--extend"]
    kill_at("part", args)
    assert entry_files(folder) == before
    old = store.read_features(
        cache, model=str(model), prompt_id="none", task=TASK, columns=parts.VECTOR_COLUMNS
    )
    code, out = cli(*args)
    assert code == 0, out
    assert not staged(cache)
    assert cli("verify", "--cache-dir", str(cache))[0] == 0
    new = store.read_features(
        cache, model=str(model), prompt_id="none", task=TASK,
        columns=(*parts.VECTOR_COLUMNS, *parts.HS_LAYER_COLUMNS),
    )  # fmt: skip
    assert sorted(new.text_ids) == sorted(old.text_ids) and len(set(new.text_ids)) == len(
        new.text_ids
    )
    rows = {tid: i for i, tid in enumerate(new.text_ids)}
    order = [rows[t] for t in old.text_ids]
    for name in parts.VECTOR_COLUMNS:
        assert (new.arrays[name][order] == old.arrays[name]).all()
