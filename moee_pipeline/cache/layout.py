"""Where things live in a cache: the root, (model, prompt, task) to an entry's folder and back,
and the folders beside the entries.

Feature entries are hive-style folders, so pyarrow.dataset, DuckDB and polars read the whole
cache as one table with `model`, `prompt` and `task` columns::

    <cache>/features/model=<slug>/prompt=<prompt-id>/task=<Task>/   an entry (parts, manifest)
    <cache>/tasks/<Task>/                                          a task's data snapshot
    <cache>/quarantine/<time>/                                     what `moee verify --repair` moved
    <cache>/staging/model=<slug>/prompt=<prompt-id>/.task=<Task>.<I>of<N>.<pid>.moee-tmp/
                                                   an entry `--overwrite` builds before its swap
    <cache>/hf-datasets/                                           the datasets library's cache

A model's slug is its name (a Hub id with `/` as `--`, a local folder's own name) when that is
path-safe already, so every Hub id keeps the slug it always had; a name whose characters had to
be replaced gets 8 hex of the SHA-256 of the name appended, so two names never share a folder
(`tiny olmoe ü` and `tiny olmoe ö` would both read `tiny_olmoe__` otherwise).

This is the only module that spells those folder names.
"""

from __future__ import annotations

import hashlib
import os
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from moee_pipeline.cache.errors import CacheError
from moee_pipeline.cache.files import TEMP_SUFFIX

FEATURES = "features"
SNAPSHOTS = "tasks"
QUARANTINE = "quarantine"
STAGING = "staging"
HF_DATASETS = "hf-datasets"
#: What may sit in a cache root besides the entries' and snapshots' own folders.
ROOT_FOLDERS = (FEATURES, SNAPSHOTS, QUARANTINE, STAGING, HF_DATASETS)
#: The environment variable naming the cache root, honoured by the CLI and the library alike.
CACHE_ENV = "MOEE_CACHE_DIR"


def cache_root(cache_dir: Path | str | None = None) -> Path:
    """The cache root: explicit, else $MOEE_CACHE_DIR, else ./cache."""
    return Path(cache_dir or os.environ.get(CACHE_ENV) or "cache")


_UNSAFE = re.compile(r"[^A-Za-z0-9._-]")


def model_name(model: str) -> str:
    """The name a model is known by wherever its cache goes: a Hub id as it is, a local folder
    by its own name (so on another machine `--model <folder name>` finds its entries)."""
    path = Path(model).expanduser()
    return path.name if (path.is_dir() or model.startswith(("/", ".", "~"))) else model


def model_slug(model: str) -> str:
    """A path-safe folder name for a model, one per name (see the module doc).

    A slug given back (`--model <slug>`, as `moee ls` shows it) is its own slug.
    """
    name = model_name(model)
    plain = name.replace("/", "--")
    slug = _UNSAFE.sub("_", plain)
    if slug != plain:
        slug += "-" + hashlib.sha256(name.encode("utf-8")).hexdigest()[:8]
    return slug


def names_model(given: str, recorded: str) -> bool:
    """Whether a model the user named (`given`: Hub id, folder, or slug) is the model a manifest
    records (`recorded`, as extraction was given it): same name, or its slug."""
    return model_name(given) == model_name(recorded) or given == model_slug(recorded)


@dataclass(frozen=True)
class EntryKey:
    """What names one feature entry: the model's slug, the prompt's id and the task."""

    model_slug: str
    prompt_id: str
    task: str

    @classmethod
    def of(cls, *, model: str, prompt_id: str, task: str) -> EntryKey:
        """The key of a model given as the user names it (Hub id, folder or slug)."""
        return cls(model_slug(model), prompt_id, task)

    @classmethod
    def from_path(cls, directory: Path) -> EntryKey:
        """The key an entry's folder spells (`.../model=<slug>/prompt=<id>/task=<Task>`)."""
        task, prompt, model = directory.name, directory.parent.name, directory.parent.parent.name
        return cls(
            model.removeprefix("model="), prompt.removeprefix("prompt="), task.removeprefix("task=")
        )

    def path(self, cache_dir: Path) -> Path:
        """The entry's folder under a cache root."""
        return (
            Path(cache_dir)
            / FEATURES
            / f"model={self.model_slug}"
            / f"prompt={self.prompt_id}"
            / f"task={self.task}"
        )


def task_dir(cache_dir: Path, *, model: str, prompt_id: str, task: str) -> Path:
    """The folder holding one (model, prompt, task)'s parts and manifest."""
    return EntryKey.of(model=model, prompt_id=prompt_id, task=task).path(cache_dir)


def iter_entries(cache_dir: Path) -> Iterator[tuple[EntryKey, Path]]:
    """Every entry folder under a cache root with its key, in layout order (a file named like
    an entry is not one: `moee verify` reports it as not belonging there)."""
    for directory in sorted(Path(cache_dir).glob(f"{FEATURES}/model=*/prompt=*/task=*")):
        if directory.is_dir():
            yield EntryKey.from_path(directory), directory


def features_root(cache_dir: Path) -> Path:
    """The folder holding every feature entry of a cache (what pandas and DuckDB read)."""
    return Path(cache_dir) / FEATURES


def entry_lock_path(directory: Path, *, shard: tuple[int, int]) -> Path:
    """The lock of one shard of an entry: beside its folder, which an overwrite swaps."""
    return directory.parent / f".{directory.name}.{shard[0]}of{shard[1]}.lock"


#: A staged entry's folder: `.task=<Task>.<I>of<N>.<pid>.moee-tmp` (an unsharded one: 0of1),
#: and the old entry an unsharded swap moved aside: `.task=<Task>.old.<pid>.moee-tmp`.
STAGED = re.compile(
    r"^\.task=(?P<task>.+)\.(?:(?P<index>\d+)of(?P<count>\d+)|old)\.\d+"
    + re.escape(TEMP_SUFFIX)
    + "$"
)


def staging_root(cache_dir: Path) -> Path:
    """Where `--overwrite` builds new entries: outside features/, so no reader ever sees one."""
    return Path(cache_dir) / STAGING


def staging_folder(cache_dir: Path, key: EntryKey) -> Path:
    """The folder holding the staged builds of one entry (and an unsharded swap's old entry)."""
    return staging_root(cache_dir) / f"model={key.model_slug}" / f"prompt={key.prompt_id}"


def staged_dir(cache_dir: Path, key: EntryKey, *, shard: tuple[int, int], pid: int) -> Path:
    """The folder process `pid` builds shard (I, N) of an entry's replacement in."""
    name = f".task={key.task}.{shard[0]}of{shard[1]}.{pid}{TEMP_SUFFIX}"
    return staging_folder(cache_dir, key) / name


def swapped_out_dir(staged: Path) -> Path:
    """Where an unsharded swap moves the old entry for the moment of the swap."""
    match = STAGED.match(staged.name)
    assert match is not None, staged
    pid = staged.name.removesuffix(TEMP_SUFFIX).rsplit(".", 1)[-1]
    return staged.with_name(f".task={match.group('task')}.old.{pid}{TEMP_SUFFIX}")


def snapshots_root(cache_dir: Path) -> Path:
    """The folder holding every task snapshot of a cache."""
    return Path(cache_dir) / SNAPSHOTS


def snapshot_dir(cache_dir: Path, task: str) -> Path:
    """Where the snapshot of one task's evaluation data lives."""
    return snapshots_root(cache_dir) / task


def quarantine_dir(cache_dir: Path, stamp: str) -> Path:
    """Where one `moee verify --repair` run moves what it found broken."""
    return Path(cache_dir) / QUARANTINE / stamp


def datasets_cache(cache_dir: Path) -> Path:
    """Where the datasets library caches downloads while mteb's loaders run for this cache."""
    return Path(cache_dir) / HF_DATASETS


#: The folders of a cache root that the tool alone writes: a file of anyone else's there is
#: read as cache data (pandas reads `features/` as one table) or moved and deleted with it.
OWNED_FOLDERS = (FEATURES, SNAPSHOTS, QUARANTINE, HF_DATASETS)


def owned_folder(cache_dir: Path, path: Path) -> Path | None:
    """The folder of the cache (`features`, `tasks`, ...) that `path` is or lies in, or None.

    Both paths are resolved first, so a relative path or a link into the cache counts too.
    """
    target = Path(path).expanduser().resolve()
    for name in OWNED_FOLDERS:
        folder = (Path(cache_dir).expanduser() / name).resolve()
        if target == folder or folder in target.parents:
            return folder
    return None


def check_outside_cache(path: Path, *, option: str, caches: Sequence[Path]) -> None:
    """Refuse an output path inside a cache's own folders (CacheError), before anything is
    written: `moee verify` would report its files as foreign, and readers would trip on them."""
    for cache in dict.fromkeys(Path(c) for c in caches):
        folder = owned_folder(cache, path)
        if folder is not None:
            raise CacheError(
                f"{option} {path} is inside the cache's {folder.name} folder, which holds only"
                " what moee stores: choose a folder outside it"
            )
