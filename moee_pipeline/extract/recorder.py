"""Recording the texts each task's evaluation encodes, in a child process or on a thread.

Recording runs mteb's evaluation with a recording encoder. Importing mteb takes seconds, and on a
thread that import would hold the interpreter lock while torch and transformers import and the
model loads; so the CLI records in a child process on another core. A process that has imported
mteb, torch and transformers already (a notebook, the test suite) has nothing left to overlap and
records on a thread instead: a child would only import it all again. (Not before: a thread using
datasets while the main thread imports transformers can meet it half initialised.) Every task is
loaded first (bad names or data fail before the model loads), then recorded in order; the caller
gets each task's splits and texts as soon as they are known, and the lists are kept in the cache
beside the task snapshot, so a second model, prompt or rerun starts no recorder at all.

The child's protocol: the parent writes one JSON request line to its stdin and keeps it open; the
child answers with JSON lines on stdout: `{"task", "splits"}` once a task is loaded, `{"task",
"texts"}` once recorded, or `{"error", "kind"}` and exit status 1. Anything else the child prints
goes to stderr. The child stops as soon as its stdin closes: when the parent no longer wants its
work, or dies (even by kill -9), so a killed run leaves no recorder behind.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
import threading
import traceback
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from pathlib import Path
from types import TracebackType
from typing import Any, TextIO

from moee_pipeline.cache.layout import snapshot_dir
from moee_pipeline.cache.snapshots import SnapshotError, read_snapshot_manifest, remove_snapshot
from moee_pipeline.cache.sources import source_of
from moee_pipeline.errors import MoeeError, first_line
from moee_pipeline.extract.settings import ExtractionError, check_texts
from moee_pipeline.tasks.registry import TaskError

logger = logging.getLogger(__name__)


class RecordingError(MoeeError, RuntimeError):
    """Recording task texts failed; the message says why."""


#: Errors raised again as themselves to the caller; any other user error as RecordingError.
_ERRORS: dict[str, type[MoeeError]] = {
    e.__name__: e for e in (TaskError, SnapshotError, ExtractionError)
}

#: Once all are imported, a child has nothing to overlap and a thread meets none half imported.
_HEAVY_IMPORTS = ("mteb", "datasets", "torch", "transformers")

#: What a recording stopped early fails its unanswered lookups with.
_STOPPED = "the recording of task texts stopped before every task was recorded"


def record(request: dict[str, Any], send: Callable[[dict[str, Any]], None]) -> None:
    """Load, snapshot and record the requested tasks, telling `send` as each is known.

    Every task is loaded (and snapshotted: a full disk fails here, before the model loads)
    before any is recorded, so a bad one fails before the slow part. A snapshot this run made
    of a task then refused for its data (mteb cannot evaluate it, its texts are all empty) is
    removed again: a refusal leaves no snapshot that a corrected data dir would have to match.
    """
    from moee_pipeline.tasks import eval_splits, load_task, task_texts, write_snapshot

    cache_dir = Path(request["cache_dir"])
    data_dir = None if request["data_dir"] is None else Path(request["data_dir"])
    loaded = []
    for name in request["tasks"]:
        task = load_task(name, cache_dir=cache_dir, data_dir=data_dir)
        made = read_snapshot_manifest(snapshot_dir(cache_dir, name)) is None
        write_snapshot(task, cache_dir=cache_dir, source=source_of(name, data_dir))
        chosen = eval_splits(task, request["splits"])
        send({"task": name, "splits": chosen})
        loaded.append((name, task, chosen, made))
    for name, task, chosen, made in loaded:
        try:
            texts = task_texts(task, splits=chosen, cache_dir=cache_dir)
            check_texts(name, texts)
        except MoeeError:
            if made:
                remove_snapshot(name, cache_dir=cache_dir)
            raise
        send({"task": name, "texts": texts})


class TaskRecorder:
    """Records the named tasks' texts in a child process or on a thread; a context manager.

    `in_process` None chooses by what this process has imported (see the module doc). With no
    names it starts nothing and every lookup fails: callers ask only for the tasks they gave it.
    """

    def __init__(
        self,
        names: Sequence[str],
        *,
        cache_dir: Path,
        data_dir: Path | None = None,
        splits: Sequence[str] | None = None,
        in_process: bool | None = None,
    ) -> None:
        self._splits: dict[str, Future[list[str]]] = {n: Future() for n in names}
        self._texts: dict[str, Future[list[str]]] = {n: Future() for n in names}
        self._process: subprocess.Popen[str] | None = None
        self._thread: threading.Thread | None = None
        if not names:
            return
        request = {
            "tasks": list(names),
            "cache_dir": str(cache_dir),
            "data_dir": None if data_dir is None else str(data_dir),
            "splits": None if splits is None else list(splits),
        }
        if in_process is None:
            in_process = all(name in sys.modules for name in _HEAVY_IMPORTS)
        where = "on a thread" if in_process else "in a child process"
        logger.info("recording the texts of %s %s", ", ".join(names), where)
        if in_process:
            target = self._record_here
        else:
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
            target = self._read_child
        self._thread = threading.Thread(
            target=target, args=(request,), name="moee-record", daemon=True
        )
        self._thread.start()

    def splits(self, name: str) -> list[str]:
        """A task's evaluation splits, once its data is loaded (raises the recorder's error)."""
        return self._splits[name].result()

    def texts(self, name: str) -> Future[list[str]]:
        """The texts of a task, resolved once recorded."""
        return self._texts[name]

    def _deliver(self, message: dict[str, Any]) -> None:
        if "texts" in message:
            self._texts[message["task"]].set_result(message["texts"])
        else:
            self._splits[message["task"]].set_result(message["splits"])

    def _fail_pending(self, failure: BaseException) -> None:
        """Never leave a caller waiting forever: every unanswered lookup raises `failure`."""
        for future in [*self._splits.values(), *self._texts.values()]:
            if not future.done():
                future.set_exception(failure)

    def _record_here(self, request: dict[str, Any]) -> None:
        failure: BaseException = RecordingError(_STOPPED)
        try:
            record(request, self._deliver)
        except (MoeeError, OSError) as error:  # as the child's would arrive
            failure = _ERRORS.get(type(error).__name__, RecordingError)(str(error))
        except BaseException as error:  # a bug: raised as is to whoever waits
            failure = error
        finally:
            self._fail_pending(failure)

    def _read_child(self, request: dict[str, Any]) -> None:
        process = self._process
        assert process is not None and process.stdout is not None
        failure: BaseException | None = None
        try:
            for line in process.stdout:
                message = json.loads(line)
                if "error" in message:
                    failure = _ERRORS.get(message["kind"], RecordingError)(message["error"])
                else:
                    self._deliver(message)
        except (ValueError, KeyError) as error:
            failure = RecordingError(f"the process recording task texts answered {error!r}")
        finally:
            code = process.wait()
            self._fail_pending(failure or RecordingError(_stopped_line(code)))

    def __enter__(self) -> TaskRecorder:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        """Stop the child at once (closing its stdin); a thread is left to finish alone.

        Writes are atomic: a recorder stopped midway leaves nothing that looks complete.
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
        if self._thread is not None:
            self._thread.join()


# ---------------------------------------------------------------------------------------
# The child
# ---------------------------------------------------------------------------------------


def _bug_line(error: BaseException) -> str:
    """What the parent says of a child that failed unexpectedly: the cause, not a dead end."""
    return (
        f"recording task texts failed ({type(error).__name__}: {first_line(error, limit=100)}): "
        "a bug; its traceback is above, please report it"
    )


def _stopped_line(code: int) -> str:
    """What the parent says of a child that exited without saying why (killed, or crashed)."""
    if code < 0:
        try:
            name = signal.Signals(-code).name
        except ValueError:
            name = f"signal {-code}"
        return f"{_STOPPED}: killed by {name} (out of memory?); rerun to go on"
    return f"{_STOPPED} (exit status {code}); see its messages above"


def _send(out: TextIO, message: dict[str, Any]) -> None:
    out.write(json.dumps(message) + "\n")
    out.flush()


def _exit_when_stdin_closes() -> None:
    sys.stdin.read()
    os._exit(1)  # the parent is gone or wants no more: stop mid-work, atomic writes only


def main() -> int:
    """Record the requested tasks, answering on stdout (see the module doc)."""
    # only the protocol goes to the parent's pipe: fd 1 (print, C libraries) goes to stderr
    out = os.fdopen(os.dup(sys.stdout.fileno()), "w", encoding="utf-8")
    os.dup2(sys.stderr.fileno(), sys.stdout.fileno())
    request = json.loads(sys.stdin.readline())
    threading.Thread(target=_exit_when_stdin_closes, daemon=True).start()
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    try:
        record(request, lambda message: _send(out, message))
    except (MoeeError, OSError) as error:
        _send(out, {"error": str(error), "kind": type(error).__name__})
        return 1
    except Exception as error:  # a bug: its traceback to stderr, its cause to the parent's line
        traceback.print_exc()
        _send(out, {"error": _bug_line(error), "kind": RecordingError.__name__})
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
