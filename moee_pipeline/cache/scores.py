"""scores.csv: its one column list, what identifies a row, and merging new rows into the file.

`moee score` writes it and `moee report` reads it; both take the columns from here.
"""

from __future__ import annotations

import csv
import logging
from collections.abc import Mapping, Sequence
from pathlib import Path

from moee_pipeline.cache import files
from moee_pipeline.errors import MoeeError, first_line

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


#: Columns every scores.csv has had; a file without them is not ours (newer columns may be absent).
REQUIRED_COLUMNS: tuple[str, ...] = ("model", "prompt", "method", "task", "split", "main_score")


class ScoresError(MoeeError):
    """A scores.csv that is not ours or cannot be read; the message names it."""


def read_rows(path: Path) -> list[dict[str, str]]:
    """The rows of an existing scores.csv, refusing a file that is not one of ours."""
    if not path.is_file() or path.stat().st_size == 0:
        return []
    try:
        with path.open(newline="", encoding="utf-8") as handle:
            reader = csv.DictReader(handle)
            missing = [c for c in REQUIRED_COLUMNS if c not in (reader.fieldnames or [])]
            if missing:
                head = ",".join(reader.fieldnames or [])[:60]
                raise ScoresError(
                    f"{path} is not a moee scores.csv (header {head!r} lacks {', '.join(missing)}):"
                    " move it away or choose another --output"
                )
            return list(reader)
    except (UnicodeDecodeError, csv.Error) as error:
        logger.info("reading %s: %s", path, error)
        raise ScoresError(
            f"{path} cannot be read as CSV ({first_line(error, limit=60)}): move it away"
        ) from None


def merge_rows(path: Path, rows: Sequence[Mapping[str, str]]) -> None:
    """Merge rows into scores.csv: a rerun configuration replaces its old rows.

    The read-merge-replace runs under a file lock, so concurrent runs into one folder keep
    every row of each; the file is replaced atomically, so a reader never sees half of it.
    """
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
