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

#: Where a row's features came from and how it was fitted; files written before these columns
#: existed are read with them empty, so their rows never replace (or are replaced by) new ones.
PROVENANCE_COLUMNS: tuple[str, ...] = (
    "quantization", "dtype", "revision", "max_length", "features", "zscore_fit",
)  # fmt: skip
SCORE_COLUMNS: tuple[str, ...] = (
    "model", "prompt", "method", "weight", "weight_rule", "rw", "zscore", "pooling", "layers",
    "task", "task_type", "split", "main_metric", "main_score", *PROVENANCE_COLUMNS,
)  # fmt: skip
#: What identifies a row: a rerun of the same configuration, task, split and provenance
#: replaces it; rows of other provenance (an nf4 and a bf16 run) stay side by side.
KEY_COLUMNS: tuple[str, ...] = (*SCORE_COLUMNS[:10], "split", *PROVENANCE_COLUMNS)


def row_key(row: Mapping[str, str | None]) -> tuple[str, ...]:
    """What identifies a row; HS ignores the RW options it records, so they are not part of it.

    An auto-weight row is identified by its rule, not by the alpha it chose.
    """
    ignored = {"rw", "layers"} if row["method"] == "HS" else set()
    if row.get("weight_rule") == "auto":
        ignored.add("weight")
    return tuple("*" if k in ignored else (row.get(k) or "") for k in KEY_COLUMNS)


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
