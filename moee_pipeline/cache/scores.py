"""scores.csv: its one column list, what identifies a row, and merging new rows into the file.

`moee score` writes it and `moee report` reads it; both take the columns from here.
"""

from __future__ import annotations

import csv
import logging
import os
from collections.abc import Mapping, Sequence
from pathlib import Path

logger = logging.getLogger(__name__)

SCORES_FILE = "scores.csv"

SCORE_COLUMNS: tuple[str, ...] = (
    "model", "prompt", "method", "weight", "rw", "zscore", "pooling", "layers",
    "task", "task_type", "split", "main_metric", "main_score",
)  # fmt: skip
#: What identifies a row: a rerun of the same configuration, task and split replaces it.
KEY_COLUMNS: tuple[str, ...] = (*SCORE_COLUMNS[:9], "split")


def row_key(row: Mapping[str, str]) -> tuple[str, ...]:
    """What identifies a row; HS ignores the RW options it records, so they are not part of it."""
    ignored = {"rw", "layers"} if row["method"] == "HS" else set()
    return tuple("*" if k in ignored else row[k] for k in KEY_COLUMNS)


def merge_rows(path: Path, rows: Sequence[Mapping[str, str]]) -> None:
    """Merge rows into scores.csv: a rerun configuration replaces its old rows."""
    keys = {row_key(r) for r in rows}
    old: list[dict[str, str]] = []
    if path.is_file():
        with path.open(newline="", encoding="utf-8") as handle:
            old = [r for r in csv.DictReader(handle) if row_key(r) not in keys]
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with tmp.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=SCORE_COLUMNS, extrasaction="ignore")
        writer.writeheader()
        writer.writerows([*old, *rows])
    tmp.replace(path)
    logger.info("wrote %d new rows (%d kept) to %s", len(rows), len(old), path)
