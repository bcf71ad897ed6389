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
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

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
