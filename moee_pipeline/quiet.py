"""Keep library chatter down while mteb and datasets run many times in one command."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator

_NOISY_LOGGERS = (
    "mteb.abstasks.abstask",
    "mteb.evaluate",
    "mteb._evaluators.pair_classification_evaluator",
)


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


@contextlib.contextmanager
def quiet_libraries() -> Iterator[None]:
    """While mteb runs many times: no datasets progress bars, each mteb warning once; restore."""
    import datasets

    was_disabled = datasets.are_progress_bars_disabled()
    datasets.disable_progress_bars()
    once = _OncePerMessage()
    noisy = [logging.getLogger(name) for name in _NOISY_LOGGERS]
    for log in noisy:
        log.addFilter(once)
    try:
        yield
    finally:
        for log in noisy:
            log.removeFilter(once)
        if not was_disabled:
            datasets.enable_progress_bars()
