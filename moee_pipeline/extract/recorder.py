"""Recording the texts each task's evaluation encodes, in a child process.

Recording runs mteb's evaluation with a recording encoder: importing mteb and running it takes
seconds, and on a thread it would hold the interpreter lock while torch and transformers import
and the model loads. A process runs it beside them on another core. The child loads every task
first (bad names or data fail before the model loads), then records them in order; the parent
reads each task's splits and texts as soon as they are known, and the lists are kept in the
cache beside the task snapshot, so a second model, prompt or rerun never starts this process.

Protocol: the parent writes one JSON request line to the child's stdin and keeps it open; the
child answers with JSON lines on stdout: `{"task", "splits"}` once a task is loaded, `{"task",
"texts"}` once recorded, or `{"error", "kind"}` and exit status 1. Anything else the child prints
goes to stderr. The child stops as soon as its stdin closes: when the parent no longer wants its
work, or dies (even by kill -9), so a killed run leaves no recorder behind.
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import threading
from collections.abc import Sequence
from concurrent.futures import Future
from pathlib import Path
from types import TracebackType
from typing import Any, TextIO

from moee_pipeline.cache.snapshots import SnapshotError
from moee_pipeline.errors import MoeeError
from moee_pipeline.tasks.registry import TaskError

logger = logging.getLogger(__name__)


class RecordingError(MoeeError, RuntimeError):
    """The process recording task texts failed; the message says why."""


#: The child's errors raised again as themselves in the parent; any other as RecordingError.
_ERRORS: dict[str, type[MoeeError]] = {e.__name__: e for e in (TaskError, SnapshotError)}


class TaskRecorder:
    """A child process that loads the named tasks and records their texts; a context manager.

    With no names it starts nothing and every lookup fails: callers ask only for the tasks
    they gave it.
    """

    def __init__(
        self,
        names: Sequence[str],
        *,
        cache_dir: Path,
        data_dir: Path | None = None,
        splits: Sequence[str] | None = None,
    ) -> None:
        self._splits: dict[str, Future[list[str]]] = {n: Future() for n in names}
        self._texts: dict[str, Future[list[str]]] = {n: Future() for n in names}
        self._process: subprocess.Popen[str] | None = None
        self._reader: threading.Thread | None = None
        if not names:
            return
        request = {
            "tasks": list(names),
            "cache_dir": str(cache_dir),
            "data_dir": None if data_dir is None else str(data_dir),
            "splits": None if splits is None else list(splits),
        }
        logger.info("recording the texts of %s in a child process", ", ".join(names))
        self._process = subprocess.Popen(
            [sys.executable, "-m", __name__],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            encoding="utf-8",
        )
        assert self._process.stdin is not None
        self._process.stdin.write(json.dumps(request) + "\n")
        self._process.stdin.flush()
        self._reader = threading.Thread(target=self._read, name="moee-record", daemon=True)
        self._reader.start()

    def splits(self, name: str) -> list[str]:
        """The evaluation splits of a task, once its data is loaded (raises the child's error)."""
        return self._splits[name].result()

    def texts(self, name: str) -> Future[list[str]]:
        """The texts of a task, resolved once recorded."""
        return self._texts[name]

    def _read(self) -> None:
        process = self._process
        assert process is not None and process.stdout is not None
        failure: BaseException | None = None
        try:
            for line in process.stdout:
                message = json.loads(line)
                if "error" in message:
                    failure = _ERRORS.get(message["kind"], RecordingError)(message["error"])
                elif "texts" in message:
                    self._texts[message["task"]].set_result(message["texts"])
                else:
                    self._splits[message["task"]].set_result(message["splits"])
        except (ValueError, KeyError) as error:  # never leave a caller waiting forever
            failure = RecordingError(f"the process recording task texts answered {error!r}")
        finally:
            code = process.wait()
            if failure is None:
                failure = RecordingError(
                    f"the process recording task texts stopped (exit status {code}) before "
                    "every task was recorded; see its messages above"
                )
            for future in [*self._splits.values(), *self._texts.values()]:
                if not future.done():
                    future.set_exception(failure)

    def __enter__(self) -> TaskRecorder:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        """Close the child's stdin: one that is done exits, one that is not stops at once.

        Its writes are atomic: a stopped child leaves nothing that looks complete.
        """
        if self._process is None:
            return
        assert self._process.stdin is not None
        self._process.stdin.close()
        try:
            self._process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait()
        if self._reader is not None:
            self._reader.join()


# ---------------------------------------------------------------------------------------
# The child
# ---------------------------------------------------------------------------------------


def _send(out: TextIO, message: dict[str, Any]) -> None:
    out.write(json.dumps(message) + "\n")
    out.flush()


def _exit_when_stdin_closes() -> None:
    sys.stdin.read()
    os._exit(1)  # the parent is gone or wants no more: stop mid-work, atomic writes only


def main() -> int:
    """Load, snapshot and record the requested tasks; answer on stdout (see the module doc)."""
    # only the protocol goes to the parent's pipe: fd 1 (print, C libraries) goes to stderr
    out = os.fdopen(os.dup(sys.stdout.fileno()), "w", encoding="utf-8")
    os.dup2(sys.stderr.fileno(), sys.stdout.fileno())
    request = json.loads(sys.stdin.readline())
    threading.Thread(target=_exit_when_stdin_closes, daemon=True).start()
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    try:
        from moee_pipeline.tasks import eval_splits, load_task, task_texts, write_snapshot

        cache_dir = Path(request["cache_dir"])
        data_dir = None if request["data_dir"] is None else Path(request["data_dir"])
        loaded = []
        for name in request["tasks"]:
            task = load_task(name, cache_dir=cache_dir, data_dir=data_dir)
            write_snapshot(task, cache_dir=cache_dir)
            chosen = eval_splits(task, request["splits"])
            _send(out, {"task": name, "splits": chosen})
            loaded.append((name, task, chosen))
        for name, task, chosen in loaded:
            texts = task_texts(task, splits=chosen, cache_dir=cache_dir)
            _send(out, {"task": name, "texts": texts})
    except (MoeeError, OSError) as error:
        _send(out, {"error": str(error), "kind": type(error).__name__})
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
