"""`moee verify`: check every cache entry against its manifest, and move broken files aside.

A part is first checked by its bytes (size, then SHA-256 as recorded when it was written): a
damaged Parquet file can crash the reader, so nothing is decoded before its hash matches. Only
then are rows, schema, widths, text ids and finiteness checked. Task snapshots are checked the
same way. `--repair` never deletes: it moves what is broken (and the manifest of an entry it
touches, which marks the entry incomplete) under `<cache>/quarantine/<time>/`, so the next
`moee extract` recomputes exactly the texts that were moved aside.
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from moee_pipeline.cache import files, layout, store
from moee_pipeline.cache.snapshots import MANIFEST as SNAPSHOT_MANIFEST
from moee_pipeline.cache.snapshots import read_snapshot_manifest

logger = logging.getLogger(__name__)

QUARANTINE = "quarantine"


@dataclass(frozen=True)
class Problem:
    """One thing wrong in the cache: the file, what is wrong, whether --repair moves it."""

    path: Path
    what: str
    movable: bool = True
    #: The cache entry (task folder) it belongs to, whose manifests --repair moves too.
    entry: Path | None = None

    def line(self) -> str:
        """The one line `moee verify` prints."""
        return f"{self.path}: {self.what}"


@dataclass(frozen=True)
class Report:
    """What a verification looked at and what it found."""

    entries: int
    parts: int
    snapshots: int
    problems: list[Problem]


def _manifests(directory: Path) -> tuple[dict[str, dict[str, Any]], list[Problem]]:
    """Every readable manifest of a task folder by name, and a problem per unreadable one."""
    found: dict[str, dict[str, Any]] = {}
    problems = []
    for path in sorted(directory.glob("_manifest*.json")):
        try:
            manifest = store.read_manifest(directory, path.name)
        except store.CacheError as error:
            newer = "schema_version" in str(error)
            what = str(error).removeprefix(f"{path} ")
            problems.append(Problem(path, what, movable=not newer, entry=None if newer else directory))
            continue
        if manifest is not None:
            found[path.name] = manifest
    return found, problems


def _check_part(
    path: Path, record: Mapping[str, Any] | None, manifest: Mapping[str, Any] | None
) -> tuple[pa.Table | None, list[str]]:
    """Check one part's bytes, then (only if they match) its content; the table and problems."""
    if record is not None:
        size = path.stat().st_size
        if size != record.get("bytes"):
            return None, [f"is {size} bytes, the manifest says {record.get('bytes')}"]
        data = path.read_bytes()
        if files.sha256_bytes(data) != record.get("sha256"):
            return None, ["does not match its SHA-256 in the manifest"]
        source: Any = pa.BufferReader(data)
    else:
        source = path
    try:
        table = pq.read_table(source)
    except (pa.ArrowException, OSError) as error:
        logger.info("reading %s: %s", path, error)
        return None, ["cannot be read as Parquet (damaged)"]
    problems = []
    if record is not None and table.num_rows != record.get("rows"):
        problems.append(f"holds {table.num_rows} rows, the manifest says {record.get('rows')}")
    missing = [c for c in ("text_id", *store.VECTOR_COLUMNS) if c not in table.column_names]
    if missing:
        problems.append(f"lacks column(s) {', '.join(missing)}")
    meta = manifest or store.schema_metadata(table.schema)
    widths = {
        "rw": int(meta.get("n_moe_layers") or 0) * int(meta.get("n_experts") or 0),
        "hs": int(meta.get("hidden_size") or 0),
    }
    for name in store.VECTOR_COLUMNS:
        if name not in table.column_names:
            continue
        kind = table.schema.field(name).type
        width = getattr(kind, "list_size", None)
        if width is None or (widths[name[:2]] and width != widths[name[:2]]):
            problems.append(f"{name} is {width or kind} wide, expected {widths[name[:2]]}")
            continue
        if not np.isfinite(store.column_matrix(table.column(name))).all():
            problems.append(f"{name} holds NaN or inf values")
    return (table if not missing else None), problems


def verify_entry(directory: Path) -> tuple[int, list[Problem]]:
    """Check one task folder; the number of parts looked at and the problems found."""
    problems = [
        Problem(p, "temp file left by a killed run", entry=directory)
        for p in files.stale_temps(directory)
    ]
    manifests, bad = _manifests(directory)
    problems += bad
    main = manifests.get(store.MANIFEST)
    records: dict[str, Any] = {}
    for manifest in manifests.values():
        records.update(manifest.get("parts") or {})
    strict = main is not None and "parts" in main  # a complete entry lists every part
    if main is not None:
        key = layout.EntryKey.from_path(directory)
        try:
            store.check_identity(
                main, directory=directory, model=key.model_slug, prompt_id=key.prompt_id, task=key.task
            )
        except store.CacheError as error:
            problems.append(Problem(directory / store.MANIFEST, str(error), movable=False))
    parts = store.part_files(directory)
    seen: set[str] = set()
    rows = 0
    for part in parts:
        record = records.get(part.name)
        if record is None and strict:
            problems.append(Problem(part, "is not in the manifest", entry=directory))
            continue
        table, found = _check_part(part, record, main)
        problems += [Problem(part, what, entry=directory) for what in found]
        if table is None:
            continue
        rows += table.num_rows
        ids = table.column("text_id").to_pylist()
        dupes = (set(ids) & seen) | {i for i, n in Counter(ids).items() if n > 1}
        if dupes:
            problems.append(Problem(part, f"repeats {len(dupes)} text id(s)", entry=directory))
        seen.update(ids)
    for name in sorted(set(records) - {p.name for p in parts}):
        what = "is in the manifest but missing"
        problems.append(Problem(directory / name, what, movable=False, entry=directory))
    if main is not None and not problems and rows != main.get("rows"):
        what = f"says {main.get('rows')} rows, the parts hold {rows}"
        problems.append(Problem(directory / store.MANIFEST, what, entry=directory))
    return len(parts), problems


def _dataset_nodes(node: Mapping[str, Any], folder: Path) -> Iterator[tuple[Path, Mapping]]:
    """(file, node) for every Parquet file of a snapshot's tree."""
    if node.get("kind") == "dataset":
        yield folder / node["file"], node
    for child in (node.get("children") or {}).values():
        yield from _dataset_nodes(child, folder / node["dir"])


def verify_snapshot(folder: Path) -> list[Problem]:
    """Check one task snapshot: its manifest, and each data file's bytes and rows."""
    manifest = read_snapshot_manifest(folder)
    if manifest is None:
        return [Problem(folder, f"task snapshot without a readable {SNAPSHOT_MANIFEST}")]
    problems = []
    for path, node in _dataset_nodes(manifest.get("tree") or {}, folder):
        if not path.is_file():
            problems.append(Problem(folder, f"snapshot file {path.name} is missing"))
            continue
        if node.get("sha256") and files.sha256_file(path) != node["sha256"]:
            problems.append(Problem(folder, f"snapshot file {path.name} is damaged (SHA-256)"))
            continue
        try:
            rows = pq.read_metadata(path).num_rows
        except (pa.ArrowException, OSError) as error:
            logger.info("reading %s: %s", path, error)
            problems.append(Problem(folder, f"snapshot file {path.name} cannot be read (damaged)"))
            continue
        if rows != node.get("rows"):
            what = f"snapshot file {path.name} holds {rows} rows, its manifest says {node['rows']}"
            problems.append(Problem(folder, what))
    return problems


def verify_cache(
    cache_dir: Path,
    *,
    model: str | None = None,
    prompts: Sequence[str] | None = None,
    tasks: Sequence[str] | None = None,
) -> Report:
    """Check the selected entries of a cache and the snapshots of their tasks."""
    cache_dir = Path(cache_dir)
    wanted_model = layout.model_slug(model) if model else None
    entries = parts = 0
    problems: list[Problem] = []
    for key, directory in layout.iter_entries(cache_dir):
        if wanted_model and key.model_slug != wanted_model:
            continue
        if (prompts and key.prompt_id not in prompts) or (tasks and key.task not in tasks):
            continue
        count, found = verify_entry(directory)
        entries, parts = entries + 1, parts + count
        problems += found
    snapshots = Path(cache_dir) / "tasks"
    problems += [Problem(p, "temp left by a killed run") for p in files.stale_temps(snapshots)]
    folders = [] if not snapshots.is_dir() else sorted(snapshots.iterdir())
    folders = [f for f in folders if f.is_dir() and not f.name.startswith(".")]
    if tasks:
        folders = [f for f in folders if f.name in tasks]
    for folder in folders:
        problems += verify_snapshot(folder)
    return Report(entries=entries, parts=parts, snapshots=len(folders), problems=problems)


def repair(cache_dir: Path, problems: Iterable[Problem]) -> list[tuple[Path, Path]]:
    """Move broken files aside (never delete), with the manifests of the entries they touch.

    Without its manifest an entry is incomplete again, so `moee extract` recomputes only the
    texts whose parts were moved. Returns (from, to) per moved path.
    """
    cache_dir = Path(cache_dir)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    paths: list[Path] = []
    for problem in problems:
        if problem.movable:
            paths.append(problem.path)
        if problem.entry is not None:
            paths += sorted(problem.entry.glob("_manifest*.json"))
    moved = []
    for path in dict.fromkeys(paths):
        if not path.exists():
            continue
        try:
            relative = path.resolve().relative_to(cache_dir.resolve())
        except ValueError:
            relative = Path(path.name)
        target = cache_dir / QUARANTINE / stamp / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        path.rename(target)
        moved.append((path, target))
        logger.info("moved %s to %s", path, target)
    return moved
