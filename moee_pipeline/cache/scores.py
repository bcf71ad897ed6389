"""scores.csv: its one column list, what identifies a row, and merging new rows into the file.

`moee score` writes it and `moee report` reads it; both take the columns from here.
"""

from __future__ import annotations

import csv
import logging
import math
from collections.abc import Mapping, Sequence
from pathlib import Path

from moee_pipeline.cache import files
from moee_pipeline.errors import MoeeError, first_line
from moee_pipeline.vocabulary import (
    METHODS,
    POOLINGS,
    RW_MODES,
    SUM,
    WEIGHT_RULES,
    ZSCORE_FITS,
    ZSCORE_MODES,
)

logger = logging.getLogger(__name__)

SCORES_FILE = "scores.csv"

#: Where a row's features came from and how it was fitted; files written before these columns
#: existed are read with them empty, so their rows never replace (or are replaced by) new ones.
PROVENANCE_COLUMNS: tuple[str, ...] = (
    "quantization", "dtype", "revision", "max_length", "features", "zscore_fit",
)  # fmt: skip
SCORE_COLUMNS: tuple[str, ...] = (
    "model", "prompt", "method", "weight", "weight_rule", "rw", "zscore", "pooling", "layers",
    "hs_layers", "task", "task_type", "split", "main_metric", "main_score", *PROVENANCE_COLUMNS,
)  # fmt: skip
#: What identifies a row: a rerun of the same configuration, task, split and provenance
#: replaces it; rows of other provenance (an nf4 and a bf16 run) stay side by side.
KEY_COLUMNS: tuple[str, ...] = (*SCORE_COLUMNS[:11], "split", *PROVENANCE_COLUMNS)
#: What an empty cell means in a column older files lack or leave empty (and files before
#: `hs_layers` existed scored the last layer's hidden state).
DEFAULTS: dict[str, str] = {"hs_layers": "last"}


def row_key(row: Mapping[str, str | None]) -> tuple[str, ...]:
    """What identifies a row; HS ignores the RW options it records, RW the HS layers, so they
    are not part of it. An auto-weight row is identified by its rule, not by the alpha it chose.
    """
    ignored = {"rw", "layers"} if row["method"] == "HS" else set()
    if row["method"] == "RW":
        ignored.add("hs_layers")
    if row.get("weight_rule") == "auto":
        ignored.add("weight")
    return tuple("*" if k in ignored else (row.get(k) or DEFAULTS.get(k, "")) for k in KEY_COLUMNS)


#: Columns every scores.csv has had; a file without them is not ours (newer columns may be absent).
REQUIRED_COLUMNS: tuple[str, ...] = ("model", "prompt", "method", "task", "split", "main_score")
#: The values each choice column may hold (the vocabulary's); "" where older files left it empty.
_CHOICES: dict[str, tuple[str, ...]] = {
    "method": METHODS,
    "weight_rule": ("", *WEIGHT_RULES),
    "rw": RW_MODES,
    "pooling": POOLINGS,
    "zscore": ZSCORE_MODES,
    "zscore_fit": ("", *ZSCORE_FITS),
}
_MOVE_AWAY = "move it away or choose another --output"


class ScoresError(MoeeError):
    """A scores.csv that is not ours or cannot be read; the message names it."""


def _number(text: str | None) -> float | None:
    """The finite number a cell holds, else None (empty, a word, NaN, inf)."""
    try:
        value = float(text or "")
    except ValueError:
        return None
    return value if math.isfinite(value) else None


def row_problem(row: Mapping[str, str | None]) -> str | None:
    """What makes a row unfit to be a scores.csv row (None when it is fit).

    The one rule for every row read or written: a score is a finite number (NaN is an error of
    its task, never a row), a MoEE-sum row has a weight, and choice columns hold the vocabulary's
    values. Columns a row lacks (older files) are not checked.
    """
    score = row.get("main_score")
    if _number(score) is None:
        return f"main_score {score!r} is not a number"
    for column in REQUIRED_COLUMNS[:-1]:
        if not row.get(column):
            return f"{column} is empty"
    for column, allowed in _CHOICES.items():
        value = row.get(column)
        if value is not None and value not in allowed:
            return f"{column} {value!r} is not one of {', '.join(a for a in allowed if a)}"
    weight = row.get("weight") or ""
    if (weight or row["method"] == SUM) and _number(weight) is None:
        return f"weight {weight!r} is not a number"
    return None


def _why(row: Mapping[str, str]) -> str:
    """The likely cause of a refused row and what to do about it."""
    try:
        older = not math.isfinite(float(row.get("main_score") or ""))
    except ValueError:
        older = False
    if older:  # what versions before NaN was an error wrote
        return " (an older moee-pipeline wrote it): delete that line or move the file away"
    return " (cut short or edited?): move the file away or repair that line"


def _ends_with_line_break(path: Path) -> bool:
    """Whether a file's last byte ends a line (every row this package writes ends in one)."""
    with path.open("rb") as handle:
        handle.seek(-1, 2)
        return handle.read(1) in (b"\n", b"\r")


def _check_header(path: Path, header: Sequence[str]) -> None:
    missing = [c for c in REQUIRED_COLUMNS if c not in header]
    if missing:
        head = ",".join(header)[:60]
        raise ScoresError(
            f"{path} is not a moee scores.csv (header {head!r} lacks column(s)"
            f" {', '.join(missing)}): {_MOVE_AWAY}"
        )
    unknown = [c for c in header if c not in SCORE_COLUMNS]
    twice = sorted({c for c in header if header.count(c) > 1})
    if unknown or twice:
        what = f"unknown column(s) {', '.join(unknown)}" if unknown else f"{', '.join(twice)} twice"
        raise ScoresError(
            f"{path} has {what[:80]} (not a file this moee-pipeline wrote): {_MOVE_AWAY}"
        )


def read_rows(path: Path) -> list[dict[str, str]]:
    """The rows of an existing scores.csv, each checked, refusing a file that is not one of ours.

    Every row must have the header's fields and pass `row_problem`, and the file must end with
    a line break: a file cut short (a full disk, a copy that stopped) or edited by hand is
    refused whole, naming the line, before anything reads a number from it or merges into it.
    """
    if not path.is_file() or path.stat().st_size == 0:
        return []
    try:
        with path.open(newline="", encoding="utf-8") as handle:
            reader = csv.reader(handle)
            header = next(reader, [])
            _check_header(path, header)
            rows: list[dict[str, str]] = []
            for values in reader:
                if not values:  # a blank line, as csv.DictReader skips it
                    continue
                row = dict(zip(header, values, strict=False))
                problem = (
                    row_problem(row)
                    if len(values) == len(header)
                    else f"has {len(values)} fields, not the header's {len(header)}"
                )
                if problem is not None:
                    raise ScoresError(f"{path} line {reader.line_num}: {problem}{_why(row)}")
                rows.append(row)
        if not _ends_with_line_break(path):  # the one sign of a row cut after a comma
            raise ScoresError(
                f"{path} line {reader.line_num}: the last row has no line break at its end"
                " (cut short?): move the file away, or end it with one if the row is whole"
            )
        return rows
    except (UnicodeDecodeError, csv.Error) as error:
        logger.info("reading %s: %s", path, error)
        raise ScoresError(
            f"{path} cannot be read as CSV ({first_line(error, limit=60)}): move it away"
        ) from None


def merge_rows(path: Path, rows: Sequence[Mapping[str, str]]) -> None:
    """Merge rows into scores.csv: a rerun configuration replaces its old rows.

    The read-merge-replace runs under a file lock, so concurrent runs into one folder keep
    every row of each; the file is replaced atomically, so a reader never sees half of it. A new
    row that `row_problem` refuses (a NaN score) is never written: ScoresError.
    """
    for row in rows:
        problem = row_problem(row)
        if problem is not None:
            raise ScoresError(f"not writing a row of {row.get('task')} to {path}: {problem}")
    keys = {row_key(r) for r in rows}
    path.parent.mkdir(parents=True, exist_ok=True)
    with files.lock_for(path):
        files.remove_stale_temps(path.parent)  # a killed run's half-merged file
        old = [r for r in read_rows(path) if row_key(r) not in keys]
        with files.atomic_path(path) as tmp, tmp.open("w", newline="", encoding="utf-8") as out:
            writer = csv.DictWriter(out, fieldnames=SCORE_COLUMNS, extrasaction="ignore")
            writer.writeheader()
            writer.writerows([*old, *rows])
    logger.info("wrote %d new rows (%d kept) to %s", len(rows), len(old), path)
