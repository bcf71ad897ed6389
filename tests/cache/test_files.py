"""The one atomic-write helper: replace-or-nothing, temps cleaned, the fault event, stale temps."""

from __future__ import annotations

import errno
import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from moee_pipeline.cache import files
from tests.support import fault_hook
from tests.support.fault_hook import Faults


def _dead_pid() -> int:
    """The pid of a process that has exited (and been reaped)."""
    done = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True
    )
    return int(done.stdout)


def test_atomic_write_replaces_and_leaves_no_temp(tmp_path: Path) -> None:
    target = tmp_path / "a.json"
    files.write_json_atomic(target, {"x": 1})
    files.write_json_atomic(target, {"x": 2})
    assert target.read_text() == '{\n  "x": 2\n}\n'
    assert [p.name for p in tmp_path.iterdir()] == ["a.json"]


def test_failure_inside_keeps_the_old_file_and_removes_the_temp(tmp_path: Path) -> None:
    target = tmp_path / "scores.csv"
    target.write_text("old\n")
    with pytest.raises(RuntimeError), files.atomic_path(target) as tmp:
        tmp.write_text("half")
        raise RuntimeError("killed halfway")
    assert target.read_text() == "old\n"
    assert [p.name for p in tmp_path.iterdir()] == ["scores.csv"]


#: A file of each kind, as the fault points tell writes apart by their final path.
TARGETS = {"part": "part-00000.parquet", "manifest": "_manifest.json", "scores": "scores.csv"}


@pytest.mark.parametrize("point", ["part", "manifest", "scores", "*"])
def test_injected_full_disk_is_enospc_and_leaves_nothing(
    point: str, tmp_path: Path, faults: Faults
) -> None:
    faults.arm(point, "enospc")
    target = tmp_path / TARGETS.get(point, "x.bin")
    with pytest.raises(OSError) as caught:
        files.write_bytes_atomic(target, b"data")
    assert caught.value.errno == errno.ENOSPC
    assert list(tmp_path.iterdir()) == []
    if point != "*":  # other points are unaffected
        other = tmp_path / next(name for p, name in TARGETS.items() if p != point)
        files.write_bytes_atomic(other, b"data")
        assert other.read_bytes() == b"data"


def test_every_write_raises_the_one_event_before_its_rename(tmp_path: Path) -> None:
    """The hook the fault tests install sees each write's final path and its complete temp."""
    seen: list[tuple[Path, Path, bytes, bool]] = []

    def hook(event: str, args: tuple[object, ...]) -> None:
        if event == files.REPLACE_EVENT and Path(str(args[0])).parent == tmp_path:
            path, temp = Path(str(args[0])), Path(str(args[1]))
            seen.append((path, temp, temp.read_bytes(), path.exists()))

    sys.addaudithook(hook)  # stays for the session: it only looks at this test's folder
    target = tmp_path / "scores.csv"
    files.write_text_atomic(target, "one\n")
    files.write_json_atomic(tmp_path / "_manifest.json", {"x": 1})
    assert seen[0] == (target, files.temp_sibling(target), b"one\n", False)
    assert [s[0].name for s in seen] == ["scores.csv", "_manifest.json"]
    assert fault_hook.EVENT == files.REPLACE_EVENT


def test_stale_temps_are_those_of_dead_writers(tmp_path: Path) -> None:
    dead = _dead_pid()
    stale_file = tmp_path / f".part-00001.parquet.{dead}{files.TEMP_SUFFIX}"
    stale_dir = tmp_path / f".STS12.ab12cd.{dead}{files.TEMP_SUFFIX}"
    live = files.temp_sibling(tmp_path / "part-00002.parquet")
    foreign = tmp_path / ".something.tmp"
    stale_file.write_bytes(b"half")
    stale_dir.mkdir()
    (stale_dir / "data.parquet").write_bytes(b"x")
    live.write_bytes(b"being written")
    foreign.write_bytes(b"not ours")
    assert files.stale_temps(tmp_path) == sorted([stale_dir, stale_file])
    files.remove_stale_temps(tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([live.name, foreign.name])


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="needs Linux /proc")
def test_a_dead_writer_not_yet_reaped_is_dead(tmp_path: Path) -> None:
    zombie = subprocess.Popen([sys.executable, "-c", "pass"])  # not waited for: a zombie
    try:
        deadline = time.monotonic() + 20
        while "Z" not in Path(f"/proc/{zombie.pid}/stat").read_text().rsplit(")", 1)[1][:3]:
            assert time.monotonic() < deadline, "the child did not exit"
            time.sleep(0.05)
        temp = tmp_path / f".part-00001.parquet.{zombie.pid}{files.TEMP_SUFFIX}"
        temp.write_bytes(b"half")
        assert files.stale_temps(tmp_path) == [temp]
    finally:
        zombie.wait()


def test_sha256_of_file_equals_sha256_of_bytes(tmp_path: Path) -> None:
    data = os.urandom(3 * (1 << 20) + 17)  # over several read chunks
    (tmp_path / "f").write_bytes(data)
    assert files.sha256_file(tmp_path / "f") == files.sha256_bytes(data)


PAUSER = """
from pathlib import Path
from moee_pipeline.cache import files
from tests.support import fault_hook
from tests.support.fault_hook import Faults
files.write_text_atomic(Path({target!r}), "new\\n")
"""


def test_kill_9_while_paused_before_the_rename_keeps_the_old_file(tmp_path: Path) -> None:
    target = tmp_path / "_manifest.json"
    target.write_text("old\n")
    env = fault_hook.child_env("manifest:pause")
    code = textwrap.dedent(PAUSER.format(target=str(target)))
    proc = subprocess.Popen(
        [sys.executable, "-c", code], stderr=subprocess.PIPE, text=True, env=env
    )
    try:
        assert proc.stderr is not None
        line = proc.stderr.readline()
        assert fault_hook.PAUSED in line, line
        temp = files.temp_sibling(target).with_name(f".{target.name}.{proc.pid}{files.TEMP_SUFFIX}")
        assert temp.read_text() == "new\n"  # complete temp, not yet renamed
    finally:
        proc.kill()  # SIGKILL
        proc.wait()
    assert target.read_text() == "old\n"
    assert files.stale_temps(tmp_path) == [temp]
