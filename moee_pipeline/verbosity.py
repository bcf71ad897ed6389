"""How loud a run is: `moee -v` sets the logging levels here, and library code asks here before
it lets a library's progress bars or warnings reach the terminal.

The library only logs and returns values; the CLI prints our own progress and results. Other
libraries' bars, warnings and chatter (transformers, mteb, datasets, scikit-learn) are kept off
the terminal unless logging is at INFO or below, which is what `-v` asks for. Each library is
silenced through its own switch where it runs: `moee_pipeline.quiet` for mteb and datasets
while tasks are evaluated, `moee_pipeline.models.quiet` for transformers while a model loads or
is saved. A process that never configures logging (a scoring worker, the recording child, a
Ray actor) is quiet.
"""

from __future__ import annotations

import logging

FORMAT = "%(levelname)s %(name)s: %(message)s"

#: Loggers that say something useless even at WARNING (bitsandbytes: an optional CPU kernel
#: package is absent, on every import).
_NOISY_AT_WARNING = ("bitsandbytes.backends.cpu.ops",)


def log_level(verbose: int) -> int:
    """The logging level of `-v` given `verbose` times: WARNING, INFO (-v), DEBUG (-vv)."""
    return logging.WARNING - 10 * min(max(verbose, 0), 2)


def configure_logging(verbose: int) -> None:
    """Log to stderr at the level `-v` asks for (set again on every call, so one process can
    run several commands, as `make demo` and the tests do)."""
    level = log_level(verbose)
    logging.basicConfig(format=FORMAT)  # a no-op where a handler exists already
    logging.getLogger().setLevel(level)
    for name in _NOISY_AT_WARNING:
        logging.getLogger(name).setLevel(max(level, logging.ERROR))


def library_output_shown() -> bool:
    """Whether other libraries' progress bars and warnings may reach the terminal: only when
    logging is at INFO or below (`moee -v`)."""
    return logging.getLogger().isEnabledFor(logging.INFO)
