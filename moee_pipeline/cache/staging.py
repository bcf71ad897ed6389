"""Replacing a cache entry without ever losing it: `--overwrite`, and a run that extends a
complete entry (more splits, texts it lacks), build the new entry beside the old one and swap it
in once the new one is complete.

A staged build lives under `<cache>/staging/` (layout.py), outside `features/`, so pandas, DuckDB
and every reader of this package never see it, in a folder named like every temp of the cache
(`.task=<Task>.<I>of<N>.<pid>.moee-tmp`): a killed run's is recognisable by its dead pid.

The commit point is the staged manifest. Before it exists the old entry is untouched and
readable, and a stopped build is only thrown away: at once on Ctrl-C or an error, or after a
kill -9 by the next run of that entry (`recover`) or `moee verify --repair`. Once it exists the
new entry is complete, and whoever finds it (the run itself; after a kill the next run or
`moee verify --repair`) finishes the swap:

- an unsharded entry: the old folder is moved aside (`.task=<Task>.old.<pid>.moee-tmp`), the
  staged one renamed into its place, the old one removed;
- shard I of N: the whole manifest and shard I's old manifest and parts are removed, the staged
  parts (numbered after the old ones, so the two never share a name) moved in, the whole
  manifest written again once every shard's is there, shard I's manifest moved in last.

Every step can be done again, so a swap stopped anywhere is finished by doing it again. The
swap itself is a few renames: only a kill in those milliseconds leaves the entry out of place,
and then the new, complete entry is the one put in place.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from filelock import FileLock, Timeout

from moee_pipeline.cache import files, layout, parts, store

logger = logging.getLogger(__name__)


def staged_dir(cache_dir: Path, key: layout.EntryKey, shard: tuple[int, int]) -> Path:
    """The folder this process builds shard (I, N) of an entry's replacement in, emptied."""
    staged = layout.staged_dir(cache_dir, key, shard=shard, pid=os.getpid())
    discard(staged)  # an earlier build of this process that stopped
    return staged


def link_parts(final: Path, staged: Path, names: list[str]) -> None:
    """Start a staged extension of a complete entry from its parts: hard links (copies where
    the file system has none), so the entry itself is never changed before the swap."""
    for name in names:
        try:
            os.link(final / name, staged / name)
        except OSError:
            shutil.copy2(final / name, staged / name)


def is_committed(staged: Path, shard: tuple[int, int]) -> bool:
    """Whether a staged build is complete (its manifest, written last, is there)."""
    return (staged / store.manifest_name(shard)).is_file()


def _cache_of(path: Path) -> Path:
    """The cache root of a staged folder (`<cache>/staging/model=../prompt=../<it>`)."""
    return path.parents[3]


def discard(path: Path) -> None:
    """Remove a staged build that will never be swapped in, and the folders it leaves empty."""
    if path.exists():
        shutil.rmtree(path, ignore_errors=True)
        logger.info("removed the unfinished overwrite %s", path)
    prune_empty(path.parent, stop=_cache_of(path))


def prune_empty(folder: Path, *, stop: Path) -> None:
    """Remove `folder` and its parents while they are empty, up to (not including) `stop`."""
    folder, stop = Path(folder), Path(stop)
    while folder != stop and stop in folder.parents:
        try:
            folder.rmdir()
        except OSError:  # not empty (or gone): what is left is someone's
            return
        folder = folder.parent


def drop_if_empty(final: Path, lock: Path) -> None:
    """Leave no trace of a run on an entry that stored nothing (a refusal, a failure before the
    first part): its empty folder, its lock and the folders above them that hold nothing else.

    The caller holds `lock`; it is unlinked before it is released, so a process that opened
    it meanwhile finds it taken, and a later one makes a new one.
    """
    with contextlib.suppress(OSError):
        final.rmdir()  # only if empty
    if final.exists():
        return
    lock.unlink(missing_ok=True)
    prune_empty(final.parent, stop=final.parents[3])


def swap_in(staged: Path, final: Path, *, shard: tuple[int, int]) -> None:
    """Put a committed staged build in the entry's place (see the module doc); re-entrant."""
    if shard[1] == 1:
        _swap_entry(staged, final)
    else:
        _swap_shard(staged, final, shard)
    prune_empty(staged.parent, stop=_cache_of(staged))
    logger.info("replaced %s", final)


def _swap_entry(staged: Path, final: Path) -> None:
    out = layout.swapped_out_dir(staged)
    final.parent.mkdir(parents=True, exist_ok=True)
    moved = False
    if final.exists():
        if out.exists():  # an older copy left by a swap that stopped after its rename
            shutil.rmtree(out)
        final.rename(out)
        moved = True
    try:
        files.before_replace(final, staged)
        staged.rename(final)
    except BaseException:
        if moved and not final.exists():
            out.rename(final)  # the old entry back in place: nothing was replaced
        raise
    shutil.rmtree(out, ignore_errors=True)


def _swap_shard(staged: Path, final: Path, shard: tuple[int, int]) -> None:
    name = store.manifest_name(shard)
    manifest = store.read_manifest(staged, name)
    assert manifest is not None, staged
    new = set(manifest.get("parts") or {})
    prefix = parts.part_prefix(shard)
    final.mkdir(parents=True, exist_ok=True)
    (final / store.MANIFEST).unlink(missing_ok=True)  # it lists the parts about to go
    (final / name).unlink(missing_ok=True)
    for old in final.glob(f"{prefix}-*.parquet"):
        if old.name not in new:
            old.unlink()
    for part in sorted(staged.glob(f"{prefix}-*.parquet")):
        part.rename(final / part.name)
    store.combine_shards(final, shard[1], manifest, pending={name: manifest})
    files.before_replace(final / name, staged / name)
    (staged / name).rename(final / name)
    shutil.rmtree(staged, ignore_errors=True)


@dataclass(frozen=True)
class Leftover:
    """What a killed `--overwrite` left under staging/: a staged build or a swapped-out entry."""

    path: Path
    key: layout.EntryKey
    #: The shard a staged build is of; None for an old entry an unsharded swap moved aside.
    shard: tuple[int, int] | None
    committed: bool

    @property
    def final(self) -> Path:
        return self.key.path(self.path.parents[3])

    def line(self) -> str:
        """What `moee verify` says about it."""
        if self.shard is None:
            return "old entry moved aside by an --overwrite or extension killed while swapping"
        if self.committed:
            return (
                "complete build of a run killed before it was swapped in (--overwrite, extension)"
            )
        return "unfinished build of a killed --overwrite or extension (the entry is intact)"


def leftovers(cache_dir: Path, key: layout.EntryKey | None = None) -> list[Leftover]:
    """Stale staged builds (their writer is dead) of one entry, or of the whole cache.

    Builds come before swapped-out entries, so recovering them in order finishes a swap
    before deciding what the old entry is for.
    """
    if key is not None:
        folders = [layout.staging_folder(cache_dir, key)]
    else:
        folders = sorted(layout.staging_root(cache_dir).glob("model=*/prompt=*"))
    found = []
    for folder in folders:
        model, prompt = folder.parent.name, folder.name
        for path in files.stale_temps(folder):
            match = layout.STAGED.match(path.name)
            if match is None or (key is not None and match.group("task") != key.task):
                continue
            task = match.group("task")
            entry = layout.EntryKey(
                model.removeprefix("model="), prompt.removeprefix("prompt="), task
            )
            index, count = match.group("index"), match.group("count")
            shard = None if index is None else (int(index), int(count))
            committed = shard is not None and is_committed(path, shard)
            found.append(Leftover(path, entry, shard, committed))
    return sorted(found, key=lambda left: (left.shard is None, str(left.path)))


@contextlib.contextmanager
def _holding(final: Path, shard: tuple[int, int], held: tuple[int, int] | None) -> Iterator[bool]:
    """Hold the entry lock of `shard` (unless this process holds it: `held`); whether it could."""
    if shard == held:
        yield True
        return
    path = layout.entry_lock_path(final, shard=shard)
    lock = FileLock(path, timeout=0)
    try:
        lock.acquire()
    except Timeout:  # a live run works on it: it is not a leftover to touch now
        yield False
        return
    try:
        yield True
    finally:
        try:
            drop_if_empty(final, path)
        finally:
            lock.release()


def recover(
    cache_dir: Path,
    key: layout.EntryKey | None = None,
    *,
    held: tuple[int, int] | None = None,
    aside: Callable[[Path], Path] | None = None,
) -> list[tuple[Path, Path | None]]:
    """Finish or throw away what killed overwrites left (of one entry, or all).

    Committed builds are swapped in; unfinished ones are removed, or handed to `aside` (how
    `moee verify --repair` keeps them; it returns where it put them); an old entry left aside
    is removed once the entry is in place, else put back. Each is handled under its shard's
    entry lock (`held`: the one this process holds already); one a live run holds is left
    alone. Returns (from, to) per leftover handled, `to` None where it was removed.
    """
    done: list[tuple[Path, Path | None]] = []
    for left in leftovers(cache_dir, key):
        shard = left.shard or (0, 1)
        with _holding(left.final, shard, held) as mine:
            if not mine or not left.path.exists():
                continue
            if left.committed:
                assert left.shard is not None
                swap_in(left.path, left.final, shard=left.shard)
                done.append((left.path, left.final))
            elif left.shard is None and not left.final.exists():
                left.final.parent.mkdir(parents=True, exist_ok=True)
                left.path.rename(left.final)
                done.append((left.path, left.final))
            elif aside is not None and left.shard is not None:
                done.append((left.path, aside(left.path)))
            else:
                discard(left.path)
                done.append((left.path, None))
            prune_empty(left.path.parent, stop=_cache_of(left.path))
    for source, target in done:
        logger.info("%s -> %s", source, target or "removed")
    return done
