"""`moee verify`: check every cache entry against its manifest, and move broken files aside.

Each part is read by the one checked read scoring uses (`parts.read_part`: bytes first, since a
damaged Parquet file can crash the reader, then rows, columns and widths), so verify and
`read_features` refuse a damaged part with the same words; the audit adds what scoring does not
check on every read (finite values, text ids stored twice, manifests that do not add up, a
complete entry that lacks texts its task records). Task snapshots are checked by their bytes
too, and every entry must have its task's snapshot. Files that do not belong in `features/` or
`tasks/` (cache/strays.py) and what a killed `--overwrite` left (cache/staging.py) are
problems too. `--repair` never deletes: it moves what is broken (and the manifest of an entry
it touches, which marks the entry incomplete) under `<cache>/quarantine/<time>/`, so the next
`moee extract` recomputes exactly the texts that were moved aside, and finishes (or moves
aside) a killed overwrite's build.
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from moee_pipeline.cache import completeness, files, layout, parts, staging, store, strays
from moee_pipeline.cache.errors import FileProblem
from moee_pipeline.cache.snapshots import MANIFEST as SNAPSHOT_MANIFEST
from moee_pipeline.cache.snapshots import read_snapshot_manifest

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Problem:
    """One thing wrong in the cache: the file, what is wrong, whether --repair moves it."""

    path: Path
    what: str
    movable: bool = True
    #: The cache entry (task folder) it belongs to, whose manifests --repair moves too.
    entry: Path | None = None

    @classmethod
    def of(cls, error: FileProblem, *, entry: Path) -> Problem:
        """The problem a reader raised, in the reader's words.

        A file that is not damaged (a newer schema: the fix is to upgrade) or is missing is
        not moved, and only damage marks its entry incomplete.
        """
        if not error.repairable:
            return cls(error.path, f"{error.what}: {error.fix}", movable=False)
        return cls(error.path, error.what, movable=error.path.exists(), entry=entry)

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
    for path in sorted(directory.glob(store.MANIFEST_GLOB)):
        try:
            manifest = store.read_manifest(directory, path.name)
        except FileProblem as error:
            problems.append(Problem.of(error, entry=directory))
            continue
        if manifest is not None:
            found[path.name] = manifest
    return found, problems


def verify_entry(directory: Path, *, cache_dir: Path | None = None) -> tuple[int, list[Problem]]:
    """Check one task folder; the number of parts looked at and the problems found.

    Each part is read exactly as `read_features` reads it (`parts.read_part`), then audited
    for what scoring does not check on every read: finite values, text ids stored twice, and
    (once all else is sound) the texts of its task that a complete entry lacks.
    """
    cache_dir = directory.parents[3] if cache_dir is None else Path(cache_dir)
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
    if main is not None:
        key = layout.EntryKey.from_path(directory)
        try:
            store.check_identity(
                main,
                directory=directory,
                model=key.model_slug,
                prompt_id=key.prompt_id,
                task=key.task,
            )
        except store.CacheError as error:
            problems.append(Problem(directory / store.MANIFEST, str(error), movable=False))
    strict = main is not None and "parts" in main  # a complete entry lists every part
    listed, mismatched = store.listed_parts(directory, records, complete=strict)
    problems += [Problem.of(error, entry=directory) for error in mismatched]
    seen: set[str] = set()
    rows = 0
    for part, record in listed:
        try:
            table = parts.read_part(part, record, meta=main)
        except FileProblem as error:
            problems.append(Problem.of(error, entry=directory))
            continue
        problems += [Problem(part, what, entry=directory) for what in parts.audit_part(table)]
        rows += table.num_rows
        ids = table.column("text_id").to_pylist()
        dupes = (set(ids) & seen) | {i for i, n in Counter(ids).items() if n > 1}
        if dupes:
            problems.append(Problem(part, f"repeats {len(dupes)} text id(s)", entry=directory))
        seen.update(ids)
    if main is not None and not problems:
        wrong = store.rows_problem(directory, main, rows)
        problems += [] if wrong is None else [Problem.of(wrong, entry=directory)]
    if main is not None and not problems:
        lacking = completeness.missing_from(directory, main, cache_dir=cache_dir, stored=seen)
        if lacking is not None:
            what = (
                f"says complete, but its parts lack {lacking[0]} of the task's {lacking[1]} "
                f"texts: run `{completeness.extract_command(main, directory)}`"
            )
            problems.append(Problem(directory / store.MANIFEST, what, movable=False))
    return len(parts.part_files(directory)), problems


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
            what = f"snapshot file {path.name} cannot be read (damaged)"
            problems.append(Problem(folder, what))
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

    def selected(key: layout.EntryKey) -> bool:
        if wanted_model and key.model_slug != wanted_model:
            return False
        return not (prompts and key.prompt_id not in prompts) and not (
            tasks and key.task not in tasks
        )

    entries = parts = 0
    problems: list[Problem] = []
    needed: dict[str, layout.EntryKey] = {}  # tasks with a complete entry: their snapshots
    for key, directory in layout.iter_entries(cache_dir):
        if not selected(key):
            continue
        count, found = verify_entry(directory, cache_dir=cache_dir)
        entries, parts = entries + 1, parts + count
        problems += found
        if (directory / store.MANIFEST).is_file():
            needed.setdefault(key.task, key)
    problems += [
        Problem(left.path, left.line(), entry=None)
        for left in staging.leftovers(cache_dir)
        if selected(left.key)
    ]
    for task in sorted(needed):
        folder = layout.snapshot_dir(cache_dir, task)
        if not folder.exists():
            what = (
                f"task snapshot of {task} is missing (scoring reads it): rerun `moee extract "
                f"--tasks {task}` (with --data-dir if its data is not on the Hub) to write it"
            )
            problems.append(Problem(folder, what, movable=False))
    if not (model or prompts or tasks):  # strays belong to no selection
        problems += [Problem(path, what) for path, what in strays.stray_problems(cache_dir)]
    snapshots = layout.snapshots_root(cache_dir)
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
    texts whose parts were moved. A killed overwrite's complete build is swapped in, an
    unfinished one moved aside. Returns (from, to) per moved path.
    """
    cache_dir = Path(cache_dir)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    problems = list(problems)
    moved: list[tuple[Path, Path]] = []
    reported = {problem.path for problem in problems}
    left = {left.path: left.key for left in staging.leftovers(cache_dir) if left.path in reported}

    def aside(path: Path) -> Path:
        return _quarantine(cache_dir, stamp, path)

    for key in dict.fromkeys(left.values()):
        done = staging.recover(cache_dir, key, aside=aside)
        moved += [(source, target) for source, target in done if target is not None]
    problems = [problem for problem in problems if problem.path not in left]
    paths: list[Path] = []
    for problem in problems:
        if problem.movable:
            paths.append(problem.path)
        if problem.entry is not None:
            paths += sorted(problem.entry.glob(store.MANIFEST_GLOB))
    for path in dict.fromkeys(paths):
        if path.exists():
            moved.append((path, _quarantine(cache_dir, stamp, path)))
    return moved


def _quarantine(cache_dir: Path, stamp: str, path: Path) -> Path:
    """Move one path under this repair's quarantine folder, keeping its place in the cache."""
    try:
        relative = path.resolve().relative_to(cache_dir.resolve())
    except ValueError:
        relative = Path(path.name)
    target = layout.quarantine_dir(cache_dir, stamp) / relative
    target.parent.mkdir(parents=True, exist_ok=True)
    path.rename(target)
    logger.info("moved %s to %s", path, target)
    return target
