"""Files in a cache's `features/` and `tasks/` folders that no writer of this package put there.

pandas, pyarrow and DuckDB read `features/` as one hive-partitioned table, so a file that does
not belong there (a results folder written into the cache, a copied CSV) breaks every such read;
one inside a task snapshot is data nobody checks. `moee verify` reports each as a problem and
`--repair` moves it to the quarantine. What belongs: in `features/`, the
`model=*/prompt=*/task=*/` folders, the entry locks beside each entry folder, and in an entry
its parts, manifests and temps (damaged ones are verify's other checks); in `tasks/`, one
folder per snapshot holding its manifest, the files its manifest lists, the recorded texts
(`encoded/<split>.parquet`) and temps.
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from moee_pipeline.cache import files, layout, parts, store
from moee_pipeline.cache.snapshots import ENCODED_DIR, MANIFEST, read_snapshot_manifest

_IN_FEATURES = "does not belong in the feature cache (readers of features/ take every file)"
_IN_SNAPSHOT = "does not belong in a task snapshot"
_ENTRY_LOCK = re.compile(r"^\.task=.+\.\d+of\d+\.lock$")


def _temp(path: Path) -> bool:
    return path.name.startswith(".") and path.name.endswith(files.TEMP_SUFFIX)


def _children(folder: Path) -> list[Path]:
    return sorted(folder.iterdir()) if folder.is_dir() else []


def _in_entry(path: Path) -> bool:
    """Whether a name belongs in an entry folder (what stands there is checked elsewhere)."""
    name = path.name
    if _temp(path):
        return True
    return fnmatch.fnmatch(name, parts.PART_GLOB) or fnmatch.fnmatch(name, store.MANIFEST_GLOB)


def feature_strays(cache_dir: Path) -> Iterator[Path]:
    """Every path under `features/` that no entry accounts for."""
    for model in _children(layout.features_root(cache_dir)):
        if not (model.is_dir() and model.name.startswith("model=")):
            yield model
            continue
        for prompt in _children(model):
            if not (prompt.is_dir() and prompt.name.startswith("prompt=")):
                yield prompt
                continue
            for task in _children(prompt):
                if task.is_dir() and task.name.startswith("task="):
                    yield from (p for p in _children(task) if not _in_entry(p))
                elif not (task.is_file() and _ENTRY_LOCK.match(task.name)):
                    yield task


def _tree_paths(node: Mapping[str, Any], folder: Path) -> Iterator[Path]:
    """Every file and folder a snapshot manifest's tree names."""
    if node.get("file"):
        yield folder / node["file"]
    if node.get("dir"):
        yield folder / node["dir"]
        for child in (node.get("children") or {}).values():
            yield from _tree_paths(child, folder / node["dir"])


def snapshot_strays(cache_dir: Path) -> Iterator[Path]:
    """Every path under `tasks/` that no snapshot accounts for (a half-written snapshot, one
    without its manifest, is verify's other check: its folder is not looked into)."""
    for folder in _children(layout.snapshots_root(cache_dir)):
        if _temp(folder):
            continue
        if not folder.is_dir() or folder.name.startswith("."):
            yield folder
            continue
        manifest = read_snapshot_manifest(folder)
        if manifest is None:
            continue
        encoded = folder / ENCODED_DIR
        known = {folder / MANIFEST, encoded, *_tree_paths(manifest.get("tree") or {}, folder)}
        reported: list[Path] = []
        for path in sorted(folder.rglob("*")):
            if path in known or _temp(path) or any(d in path.parents for d in reported):
                continue
            if path.parent == encoded and path.is_file() and path.suffix == ".parquet":
                continue  # one split's recorded texts
            reported.append(path)
            yield path


def stray_problems(cache_dir: Path) -> Iterator[tuple[Path, str]]:
    """(path, what is wrong) for every stray, in the words `moee verify` prints."""
    for path in feature_strays(cache_dir):
        yield path, f"{_IN_FEATURES}: move it out of the cache"
    for path in snapshot_strays(cache_dir):
        yield path, f"{_IN_SNAPSHOT}: move it out of the cache"
