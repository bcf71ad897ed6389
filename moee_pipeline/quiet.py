"""Keeping mteb's and datasets' output off the terminal while they evaluate tasks many times in
one command (recording task texts, scoring), so our own progress bar and results are all a
run shows; with `moee -v` their bars and warnings are left alone (`moee_pipeline.verbosity`).

- datasets' progress bars ("Map:", ...): its public switch, `datasets.disable_progress_bars()`;
- mteb's evaluators draw their bars only when `show_progress_bar` asks for them (we pass
  False), except the Summarization evaluator's "Scoring" bar, which has no switch: while
  quiet, that module's `tqdm` is one that is disabled (tests/cli/test_terminal.py checks the name
  against the pinned mteb);
- Python warnings of the libraries (scikit-learn's ConvergenceWarning from mteb's few-shot
  classifier, ten per evaluation; mteb's "task is superseded"): not shown;
- mteb's repeated log warnings: each distinct message once (it repeats them per evaluation).

These switches are process-wide and a recording thread may evaluate while the main thread
scores, so uses are counted: the first to enter turns them off, the last to leave restores them.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import threading
import warnings
from collections.abc import Callable, Iterator
from typing import Any

from moee_pipeline.verbosity import library_output_shown

_NOISY_LOGGERS = (
    "mteb.abstasks.abstask",
    "mteb.evaluate",
    "mteb._evaluators.pair_classification_evaluator",
)

#: The mteb module whose progress bar has no switch: its module-level `tqdm` is swapped.
SUMMARIZATION_EVALUATOR = "mteb._evaluators.text.summarization_evaluator"

#: Warnings that libraries raise on every evaluation and a user can do nothing about.
_QUIET_WARNINGS: tuple[type[Warning], ...] = (UserWarning, FutureWarning, DeprecationWarning)


class _OncePerMessage(logging.Filter):
    """Let each distinct message through once (mteb repeats its warnings on every evaluation)."""

    def __init__(self) -> None:
        super().__init__()
        self._seen: set[str] = set()

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if message in self._seen:
            return False
        self._seen.add(message)
        return True


Undo = Callable[[], None]


def _once_per_message() -> Undo:
    once = _OncePerMessage()
    noisy = [logging.getLogger(name) for name in _NOISY_LOGGERS]
    for log in noisy:
        log.addFilter(once)

    def undo() -> None:
        for log in noisy:
            log.removeFilter(once)

    return undo


def _datasets_bars_off() -> Undo:
    import datasets

    if datasets.are_progress_bars_disabled():
        return lambda: None
    datasets.disable_progress_bars()
    return datasets.enable_progress_bars


def _summarization_bar_off() -> Undo:
    from mteb._evaluators.text import summarization_evaluator as module

    original: Any = getattr(module, "tqdm", None)
    if original is None:  # mteb changed: tests/cli/test_terminal.py says so; nothing to swap here
        return lambda: None
    setattr(module, "tqdm", functools.partial(original, disable=True))  # noqa: B010
    return lambda: setattr(module, "tqdm", original)


def _warnings_off() -> Undo:
    caught = warnings.catch_warnings()
    caught.__enter__()
    for category in _QUIET_WARNINGS:
        warnings.simplefilter("ignore", category)
    return lambda: caught.__exit__(None, None, None)


class _Switches:
    """The process-wide switches, turned off by the first user and restored by the last."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._users = 0
        self._undo: list[Undo] = []

    def enter(self) -> None:
        with self._lock:
            self._users += 1
            if self._users > 1:
                return
            steps = [_once_per_message]
            if not library_output_shown():
                steps += [_datasets_bars_off, _summarization_bar_off, _warnings_off]
            self._undo = [step() for step in steps]

    def leave(self) -> None:
        with self._lock:
            self._users -= 1
            if self._users:
                return
            undo, self._undo = self._undo, []
            for step in reversed(undo):
                step()


_SWITCHES = _Switches()


@contextlib.contextmanager
def quiet_libraries() -> Iterator[None]:
    """While mteb evaluates: no datasets or mteb bars, no library warnings, each mteb log
    warning once (bars and warnings stay with `-v`); everything restored afterwards."""
    _SWITCHES.enter()
    try:
        yield
    finally:
        _SWITCHES.leave()
