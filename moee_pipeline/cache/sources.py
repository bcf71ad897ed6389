"""What a task snapshot was made from, so that data named with `--data-dir` is never replaced by
a snapshot of other data in silence.

A snapshot made from a data dir records the SHA-256 of each file it was loaded from; a later
run given the same files knows them by their bytes, without importing mteb or loading them.
Other files are loaded and compared with the snapshot (tasks/loading.py), and once they prove to
hold its data, the snapshot records them too (`note_source`).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from moee_pipeline.cache import files, layout
from moee_pipeline.cache.snapshots import MANIFEST, read_snapshot_manifest


def data_dir_files(name: str, data_dir: Path) -> dict[str, str] | None:
    """{file: SHA-256} of the Parquet files a data dir holds for task `name` (its folder's,
    relative to it), or None when it holds no folder for the task."""
    folder = Path(data_dir) / name
    if not folder.is_dir():
        return None
    found = sorted(p for p in folder.rglob("*.parquet") if p.is_file())
    return {str(p.relative_to(folder)): files.sha256_file(p) for p in found}


def source_of(name: str, data_dir: Path | None) -> dict[str, Any] | None:
    """What a task's data is loaded from, for its snapshot: a data dir's files, or None."""
    found = None if data_dir is None else data_dir_files(name, Path(data_dir))
    return None if found is None else {"data_dir_files": found}


def same_source(name: str, data_dir: Path, *, cache_dir: Path) -> bool:
    """Whether a task's snapshot was made from exactly the files the data dir holds for it
    (by their bytes, read without mteb). False also when the snapshot does not say what it was
    made from: only loading the data dir tells then."""
    manifest = read_snapshot_manifest(layout.snapshot_dir(cache_dir, name))
    recorded = (manifest or {}).get("source", {}).get("data_dir_files")
    return recorded is not None and recorded == data_dir_files(name, data_dir)


def note_source(name: str, source: dict[str, Any], *, cache_dir: Path) -> None:
    """Record in a snapshot's manifest which files it matches, once loading them showed that
    they hold its data: later runs then compare the files' bytes, not their data."""
    folder = layout.snapshot_dir(cache_dir, name)
    manifest = read_snapshot_manifest(folder)
    if manifest is not None and manifest.get("source") != source:
        files.write_text_atomic(folder / MANIFEST, json.dumps({**manifest, "source": source}))
