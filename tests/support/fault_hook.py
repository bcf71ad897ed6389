"""Fault injection for the tests: pause or fail chosen writes at the package's one audit event.

Every write the package makes raises the audit event `moee_pipeline.replace` (final path,
complete temp) just before it becomes visible (`cache/files.py`). The hook installed here picks
writes by their final path, one of the points

    part       a feature part (`part-*.parquet`)
    manifest   an entry's manifest (`_manifest*.json`)
    swap       an --overwrite's staged build moving into the entry's place (the entry folder,
               or a shard's manifest, coming from under staging/)
    snapshot   a task snapshot folder moving into place, or its recorded texts
    snapshot-manifest   the manifest inside a snapshot folder being written
    scores     `scores.csv`
    results    an mteb result file (`<Task>.json`)
    *          any write

and there either pauses (`pause`: one line `PAUSED <point> <temp>` on stderr, then sleeps until
killed, so a test can `kill -9` a process whose temp is complete but not renamed), stalls
(`stall`: the same line, then a few seconds' sleep before the write goes on, so a test can
signal a process in the middle of its work) or fails as a full disk would (`enospc`: OSError
ENOSPC).

`arm`/`disarm` act in this process (tests use the `faults` fixture, a `Faults`). Child processes
(a CLI run, its recording child) get the hook from `sitecustomize.py` in `fault_site/`, which
every Python process started with `child_env(...)` (that folder on PYTHONPATH, the plan in
$MOEE_TEST_FAULT) runs at start-up. Standard library only, as that start-up loads this file.
"""

from __future__ import annotations

import errno
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pytest

#: The package's event (cache/files.py REPLACE_EVENT; a test checks that they agree).
EVENT = "moee_pipeline.replace"
ENV = "MOEE_TEST_FAULT"
ACTIONS = ("pause", "stall", "enospc")
#: The line a paused (or stalled) writer prints to stderr, so a test knows when to kill it.
PAUSED = "moee test: paused at"
#: How long a stalled write waits before it goes on.
STALL_SECONDS = 3.0
SITE = Path(__file__).resolve().parent / "fault_site"


def _is_result(path: Path, temp: Path) -> bool:
    return path.suffix == ".json" and not (
        POINTS["manifest"](path, temp) or POINTS["snapshot-manifest"](path, temp)
    )


#: Each point picks writes by their final path and their complete temp.
POINTS: dict[str, Callable[[Path, Path], bool]] = {
    "part": lambda path, _: path.name.startswith("part-") and path.suffix == ".parquet",
    "manifest": lambda path, _: path.name.startswith("_manifest") and path.suffix == ".json",
    "swap": lambda path, temp: "staging" in temp.parts and "features" in path.parts,
    "snapshot": lambda path, _: path.parent.name in {"tasks", "encoded"},
    "snapshot-manifest": lambda path, _: path.name == "manifest.json",
    "scores": lambda path, _: path.name == "scores.csv",
    "results": _is_result,
    "*": lambda path, _: True,
}

_armed: dict[str, str] = {}  # point -> action, in this process
_installed: list[bool] = []


def _hook(event: str, args: tuple[Any, ...]) -> None:
    if event != EVENT or not _armed:
        return
    path, temp = Path(args[0]), Path(args[1])
    for point, action in list(_armed.items()):
        if not POINTS[point](path, temp):
            continue
        if action in {"pause", "stall"}:
            sys.stderr.write(f"{PAUSED} {point} {temp}\n")
            sys.stderr.flush()
            while action == "pause":  # until killed
                time.sleep(60)
            time.sleep(STALL_SECONDS)
            return
        raise OSError(errno.ENOSPC, f"No space left on device (injected at {point})", str(path))


def arm(point: str, action: str) -> None:
    """Pause or fail every later write at `point` in this process (installs the hook once)."""
    if point not in POINTS or action not in ACTIONS:
        raise ValueError(f"fault {point}:{action}: points {list(POINTS)}, actions {ACTIONS}")
    if not _installed:  # an audit hook cannot be removed: one per process, armed or not
        sys.addaudithook(_hook)
        _installed.append(True)
    _armed[point] = action


def armed() -> str:
    """What is armed in this process, as a plan for `child_env`."""
    return ",".join(f"{point}:{action}" for point, action in _armed.items())


def disarm() -> None:
    """Let every write through again."""
    _armed.clear()


def parse(plan: str) -> list[tuple[str, str]]:
    """`point:action[,point:action...]` as pairs."""
    pairs = []
    for item in plan.split(","):
        point, _, action = item.strip().partition(":")
        if point:
            pairs.append((point, action))
    return pairs


def child_env(plan: str, base: dict[str, str] | None = None) -> dict[str, str]:
    """An environment whose Python processes arm `plan` (`point:action,...`) at start-up."""
    env = dict(os.environ if base is None else base)
    env[ENV] = plan
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(SITE), env.get("PYTHONPATH")) if p)
    return env


def install_from_env() -> None:
    """Arm what $MOEE_TEST_FAULT asks for (run by `fault_site/sitecustomize.py`)."""
    for point, action in parse(os.environ.get(ENV, "")):
        arm(point, action)


class Faults:
    """Fault points armed for one test (the `faults` fixture): in this process, and in every
    process it starts from then on (through the environment, undone with the test)."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self._monkeypatch = monkeypatch

    def arm(self, point: str, action: str) -> None:
        """Pause or fail the writes at `point` from now on."""
        arm(point, action)
        for name, value in child_env(armed()).items():
            if os.environ.get(name) != value:
                self._monkeypatch.setenv(name, value)

    def clear(self) -> None:
        """Let every write through again, here and in processes started from now on."""
        disarm()
        self._monkeypatch.delenv(ENV, raising=False)
