"""Where things live in a cache: the root, (model, prompt, task) to an entry's folder and back,
and the folders beside the entries.

Feature entries are hive-style folders, so pyarrow.dataset, DuckDB and polars read the whole
cache as one table with `model`, `prompt` and `task` columns::

    <cache>/features/model=<slug>/prompt=<prompt-id>/task=<Task>/   an entry (parts, manifest)
    <cache>/tasks/<Task>/                                          a task's data snapshot
    <cache>/quarantine/<time>/                                     what `moee verify --repair` moved
    <cache>/hf-datasets/                                           the datasets library's cache

This is the only module that spells those folder names.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from moee_pipeline.cache.errors import CacheError

FEATURES = "features"
SNAPSHOTS = "tasks"
QUARANTINE = "quarantine"
HF_DATASETS = "hf-datasets"
#: The environment variable naming the cache root, honoured by the CLI and the library alike.
CACHE_ENV = "MOEE_CACHE_DIR"


def cache_root(cache_dir: Path | str | None = None) -> Path:
    """The cache root: explicit, else $MOEE_CACHE_DIR, else ./cache."""
    return Path(cache_dir or os.environ.get(CACHE_ENV) or "cache")


def model_slug(model: str) -> str:
    """A path-safe name for a model: Hub ids keep both parts, local folders their own name."""
    path = Path(model).expanduser()
    name = path.name if (path.is_dir() or model.startswith(("/", ".", "~"))) else model
    return re.sub(r"[^A-Za-z0-9._-]", "_", name.replace("/", "--"))


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
    """Every entry folder under a cache root with its key, in layout order."""
    for directory in sorted(Path(cache_dir).glob(f"{FEATURES}/model=*/prompt=*/task=*")):
        yield EntryKey.from_path(directory), directory


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
