"""The tasks a run left out as of a type we do not score (`--benchmark ... --skip-unsupported`),
kept beside scores.csv so that `moee report` can say the benchmark's average is not the whole
benchmark's. Runs merge into it as they merge into scores.csv.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from pathlib import Path

from moee_pipeline.cache import files

logger = logging.getLogger(__name__)

SKIPPED_FILE = "skipped-tasks.json"


def read_skipped(folder: Path) -> dict[str, str]:
    """{task: type} left out by earlier runs writing into `folder` (empty when none)."""
    path = Path(folder) / SKIPPED_FILE
    try:
        payload = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as error:
        logger.warning("ignoring %s (%s)", path, error)
        return {}
    tasks = payload.get("tasks") if isinstance(payload, dict) else None
    return {str(k): str(v) for k, v in tasks.items()} if isinstance(tasks, dict) else {}


def merge_skipped(folder: Path, skipped: Mapping[str, str]) -> None:
    """Add this run's skipped tasks to the folder's record (nothing written when none)."""
    if not skipped:
        return
    merged = {**read_skipped(folder), **skipped}
    Path(folder).mkdir(parents=True, exist_ok=True)
    files.write_json_atomic(Path(folder) / SKIPPED_FILE, {"tasks": dict(sorted(merged.items()))})
