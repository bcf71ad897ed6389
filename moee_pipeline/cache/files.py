"""Crash-safe file writing for everything the package stores, and the one event tests hook.

Every file and folder the cache or the results hold appears by one `os.replace` of a temp
sibling that was written and fsynced completely: a reader sees the old version or the whole new
one, never half a file. Temp names are recognisable (`.<name>.<pid>.moee-tmp`), so the leftovers
of a killed run can be told from data, and from a temp a live process is still writing.

Just before a write becomes visible (the rename), the writer raises the audit event
`moee_pipeline.replace` with the final path and the complete temp (`sys.audit`, the standard
library's hook mechanism). Nothing in the package listens; without a hook it costs next to
nothing. The fault tests install one (`sys.addaudithook`) that pauses or fails chosen writes,
chosen by their path, to prove that a kill or a full disk there loses nothing.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import shutil
import sys
import tempfile
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from filelock import FileLock

logger = logging.getLogger(__name__)

TEMP_SUFFIX = ".moee-tmp"
#: The audit event raised before every write becomes visible: args (final path, temp path).
REPLACE_EVENT = "moee_pipeline.replace"
_CHUNK = 1 << 20


def not_a_file(path: Path) -> str | None:
    """What stands at `path` where the cache keeps a file, if it is not one: "a folder",
    "a broken link", "not a regular file"; None when it is a file or nothing is there."""
    if path.is_file():
        return None
    if path.is_dir():
        return "a folder"
    if path.is_symlink():
        return "a broken link"
    return "not a regular file" if path.exists() else None


def temp_sibling(path: Path) -> Path:
    """The temp name a writer of `path` uses: hidden, owned by this process, recognisable."""
    return path.with_name(f".{path.name}.{os.getpid()}{TEMP_SUFFIX}")


def before_replace(path: Path, temp: Path) -> None:
    """Say that `temp`, complete, is about to become `path` (the audit hook's one event).

    For a library that writes `path` in place (mteb's results), `temp` is `path` itself.
    """
    sys.audit(REPLACE_EVENT, Path(path), Path(temp))


def _fsync_dir(directory: Path) -> None:
    """Make a rename durable; not every platform can open a folder, which is fine there."""
    with contextlib.suppress(OSError):
        fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


@contextlib.contextmanager
def atomic_path(path: Path) -> Iterator[Path]:
    """Yield a temp path to write `path`'s new content to; on success it replaces `path`.

    The temp is fsynced before the rename and removed on any failure, so neither a full disk
    nor an exception leaves a file that looks complete.
    """
    path = Path(path)
    tmp = temp_sibling(path)
    try:
        yield tmp
        before_replace(path, tmp)
        with tmp.open("rb") as handle:
            os.fsync(handle.fileno())
        tmp.replace(path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    _fsync_dir(path.parent)


def write_bytes_atomic(path: Path, data: bytes | memoryview) -> None:
    """Write bytes so that readers see either the old file or the whole new one."""
    with atomic_path(path) as tmp, tmp.open("wb") as handle:
        handle.write(data)


def write_text_atomic(path: Path, text: str) -> None:
    """Write UTF-8 text atomically (see `write_bytes_atomic`)."""
    write_bytes_atomic(path, text.encode("utf-8"))


def write_json_atomic(path: Path, payload: Mapping[str, Any]) -> None:
    """Write JSON atomically, indented and with sorted keys (manifests are read by people too)."""
    text = json.dumps(dict(payload), indent=2, sort_keys=True) + "\n"
    write_text_atomic(path, text)


@contextlib.contextmanager
def atomic_dir(final: Path) -> Iterator[Path]:
    """Yield an empty temp folder next to `final` to fill; the caller moves it into place
    (calling `before_replace(final, temp)` first, as every writer does).

    The folder is removed if the body fails; its name marks it as a temp of this process.
    """
    final.parent.mkdir(parents=True, exist_ok=True)
    suffix = f".{os.getpid()}{TEMP_SUFFIX}"  # like a file's temp: the pid comes last
    tmp = Path(tempfile.mkdtemp(prefix=f".{final.name}.", suffix=suffix, dir=final.parent))
    try:
        yield tmp
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


def lock_for(path: Path, *, timeout: float = 600.0) -> FileLock:
    """The lock every writer of `path` holds while it reads, merges and replaces it.

    A hidden sibling file; it waits up to `timeout` seconds for another holder.
    """
    return FileLock(path.with_name(f".{path.name}.lock"), timeout=timeout)


def sha256_bytes(data: bytes | memoryview) -> str:
    """The hex SHA-256 of some bytes."""
    return hashlib.sha256(data).hexdigest()


def sha256_file(path: Path) -> str:
    """The hex SHA-256 of a file's bytes, read in chunks (never decoded)."""
    digest = hashlib.sha256()
    with Path(path).open("rb") as handle:
        while chunk := handle.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def _writer_pid(path: Path) -> int | None:
    """The pid a temp name carries, or None if it is not one of ours."""
    if not path.name.startswith(".") or not path.name.endswith(TEMP_SUFFIX):
        return None
    pid = path.name.removesuffix(TEMP_SUFFIX).rsplit(".", 1)[-1]
    return int(pid) if pid.isdigit() else None


def _alive(pid: int) -> bool:
    """Whether a writer process still runs (a zombie, dead but not yet reaped, does not)."""
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:  # Linux: the state field follows the command name in parentheses
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return True
    return state != "Z"


def stale_temps(directory: Path) -> list[Path]:
    """Temp files and folders in `directory` whose writer is gone (a killed run's leftovers)."""
    if not Path(directory).is_dir():
        return []
    found = []
    for path in sorted(Path(directory).glob(f".*{TEMP_SUFFIX}")):
        pid = _writer_pid(path)
        if pid is not None and not _alive(pid):
            found.append(path)
    return found


def remove_stale_temps(directory: Path) -> list[Path]:
    """Remove a killed run's temps from `directory`: they were never part of the cache."""
    removed = stale_temps(directory)
    for path in removed:
        if path.is_dir():
            shutil.rmtree(path, ignore_errors=True)
        else:
            path.unlink(missing_ok=True)
        logger.info("removed %s, left by a killed run", path)
    return removed
