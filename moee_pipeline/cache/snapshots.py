"""Task snapshots: a task's loaded evaluation data, frozen under `<cache>/tasks/<Task>/`.

Scoring must work on a laptop with no network and no data dir, so extraction freezes exactly the
data mteb evaluated (after `dataset_transform`). The layout mirrors `task.dataset` generically:
every `datasets.Dataset` becomes one Parquet file (row order and features kept: classification
draws its few-shot rows by row index), every plain dict without datasets inside (retrieval qrels,
top_ranked) one JSON file, and `manifest.json` records the tree. The manifest is written last and
the folder is renamed into place, so a folder without it is never taken as complete.

mteb and datasets are imported only where a snapshot is written or its data read: a rerun that
finds a task's recorded texts starts its first forward without importing either.
"""

from __future__ import annotations

import contextlib
import functools
import importlib.metadata
import json
import logging
import os
import re
import shutil
import uuid
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pyarrow as pa
import pyarrow.parquet as pq

if TYPE_CHECKING:
    from datasets import Dataset
    from mteb.abstasks import AbsTask

from moee_pipeline.cache import files, layout
from moee_pipeline.errors import MoeeError

logger = logging.getLogger(__name__)


class SnapshotError(MoeeError):
    """A task snapshot is damaged; the message names the file and what to run."""


MANIFEST = "manifest.json"
SNAPSHOT_FORMAT = 1


@functools.cache
def mteb_version() -> str:
    """The installed mteb's version, read without importing mteb."""
    return importlib.metadata.version("mteb")


def read_snapshot_manifest(folder: Path) -> dict[str, Any] | None:
    """The manifest of a complete snapshot, or None when the folder is absent or half-written."""
    try:
        manifest = json.loads((folder / MANIFEST).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(manifest, dict) or manifest.get("format") != SNAPSHOT_FORMAT:
        return None
    return manifest


def _contains_dataset(value: Any) -> bool:
    """Whether a nested value holds a Dataset somewhere, i.e. must be a folder, not a JSON leaf."""
    from datasets import Dataset

    if isinstance(value, Dataset):
        return True
    if isinstance(value, dict):
        return any(_contains_dataset(v) for v in value.values())
    return False


def _json_default(value: Any) -> Any:
    """Turn numpy scalars and other non-JSON leaves into plain Python values."""
    if hasattr(value, "item"):
        return value.item()
    if isinstance(value, set | tuple):
        return list(value)
    raise TypeError(f"cannot store {type(value).__name__} in a task snapshot")


def _write_node(value: Any, folder: Path, stem: str) -> dict[str, Any]:
    """Write one node of the dataset tree under `folder` and describe it for the manifest."""
    from datasets import Dataset, DatasetDict

    if isinstance(value, Dataset):
        table = value.with_format("arrow")[:]  # applies any select()/indices mapping, in row order
        path = folder / f"{stem}.parquet"
        pq.write_table(table, path, compression="zstd")
        return {
            "kind": "dataset",
            "file": f"{stem}.parquet",
            "rows": value.num_rows,
            "features": value.features.to_dict(),
            "sha256": files.sha256_file(path),
        }
    if isinstance(value, dict) and _contains_dataset(value):
        sub = folder / stem
        sub.mkdir()
        children = {}
        for i, (key, child) in enumerate(value.items()):
            safe = re.sub(r"[^A-Za-z0-9_.-]", "_", str(key))[:60]
            children[str(key)] = _write_node(child, sub, f"{i:03d}-{safe}")
        kind = "datasetdict" if isinstance(value, DatasetDict) else "dict"
        return {"kind": kind, "dir": stem, "children": children}
    if value is None:
        return {"kind": "none"}
    (folder / f"{stem}.json").write_text(
        json.dumps(value, default=_json_default, ensure_ascii=False), encoding="utf-8"
    )
    return {"kind": "json", "file": f"{stem}.json"}


def _read_node(node: dict[str, Any], folder: Path) -> Any:
    """Rebuild one node written by `_write_node`, in memory (never through the datasets cache)."""
    from datasets import Dataset, DatasetDict, DatasetInfo, Features

    kind = node["kind"]
    if kind == "dataset":
        try:
            table = pq.read_table(folder / node["file"])
        except (OSError, pa.ArrowException) as error:
            logger.info("reading %s: %s", folder / node["file"], error)
            raise SnapshotError(
                f"task snapshot file {folder / node['file']} cannot be read (damaged): "
                "run `moee verify --repair`, then `moee extract` (or pass --data-dir)"
            ) from None
        features = Features.from_dict(node["features"])
        table = table.replace_schema_metadata(None).cast(features.arrow_schema)
        return Dataset(table, info=DatasetInfo(features=features))
    if kind in {"dict", "datasetdict"}:
        sub = folder / node["dir"]
        children = {key: _read_node(child, sub) for key, child in node["children"].items()}
        return DatasetDict(children) if kind == "datasetdict" else children
    if kind == "none":
        return None
    return json.loads((folder / node["file"]).read_text(encoding="utf-8"))


def write_snapshot(
    task: AbsTask,
    *,
    cache_dir: Path,
    overwrite: bool = False,
    source: dict[str, Any] | None = None,
) -> Path:
    """Freeze the task's loaded evaluation data under `<cache_dir>/tasks/<name>/`.

    A complete snapshot of the same task is kept as is (a no-op) unless `overwrite`; concurrent
    writers (e.g. two extraction shards) are safe because the folder appears by one rename.
    `source` says what the data was loaded from (`{"data_dir_files": ...}` for a data dir), so
    a later run given the same files knows them without loading them.
    """
    name = task.metadata.name
    if not task.data_loaded or task.dataset is None:
        raise ValueError(f"task {name} has no data loaded; load it with load_task() first")
    final = layout.snapshot_dir(cache_dir, name)
    existing = read_snapshot_manifest(final)
    if existing is not None and existing.get("task") == name and not overwrite:
        logger.debug("snapshot of %s already complete at %s", name, final)
        return final
    files.remove_stale_temps(final.parent)
    with files.atomic_dir(final) as tmp:
        tree = _write_node(task.dataset, tmp, "data")
        manifest = {
            "format": SNAPSHOT_FORMAT,
            "task": name,
            "task_type": task.metadata.type,
            "mteb_version": mteb_version(),
            "dataset_revision": task.metadata.dataset.get("revision"),
            "eval_splits": list(task.eval_splits),
            "hf_subsets": list(task.hf_subsets) if task.hf_subsets else None,
            "created": datetime.now(UTC).isoformat(timespec="seconds"),
            "tree": tree,
            **({"source": source} if source else {}),
        }
        files.write_text_atomic(tmp / MANIFEST, json.dumps(manifest, indent=1))
        files.before_replace(final, tmp)
        _move_into_place(tmp, final, overwrite=overwrite)
    logger.info("wrote task snapshot %s", final)
    return final


def _move_into_place(tmp: Path, final: Path, *, overwrite: bool) -> None:
    """Move the temp folder to `final`, replacing a half-written (or, if asked, old) one."""
    if final.exists():
        if read_snapshot_manifest(final) is not None and not overwrite:
            return  # another writer finished first; its snapshot is equivalent
        stamp = f"{uuid.uuid4().hex[:8]}.{os.getpid()}"
        trash = final.with_name(f".{final.name}.{stamp}{files.TEMP_SUFFIX}")
        try:
            final.rename(trash)
        except FileNotFoundError:
            pass  # removed concurrently
        else:
            shutil.rmtree(trash, ignore_errors=True)
    try:
        tmp.rename(final)
    except OSError:
        if read_snapshot_manifest(final) is None:
            raise
        # lost a race to a concurrent writer whose snapshot is complete: keep theirs


def remove_snapshot(name: str, *, cache_dir: Path) -> None:
    """Take back a snapshot this run just made of data it then refused (moved aside as a
    temp, then removed, so no reader sees half of it)."""
    final = layout.snapshot_dir(cache_dir, name)
    trash = final.with_name(
        f".{final.name}.{uuid.uuid4().hex[:8]}.{os.getpid()}{files.TEMP_SUFFIX}"
    )
    with contextlib.suppress(FileNotFoundError):
        final.rename(trash)
        shutil.rmtree(trash, ignore_errors=True)
        logger.info("removed the snapshot %s of refused data", final)


def read_snapshot(name: str, *, cache_dir: Path) -> Any | None:
    """The dataset tree of a complete snapshot of `name`, or None when there is none."""
    folder = layout.snapshot_dir(cache_dir, name)
    manifest = read_snapshot_manifest(folder)
    if manifest is None:
        if folder.exists():
            logger.warning("ignoring incomplete task snapshot %s (no %s)", folder, MANIFEST)
        return None
    if manifest.get("task") != name:
        logger.warning("ignoring snapshot %s: it holds task %s", folder, manifest.get("task"))
        return None
    if manifest.get("mteb_version") != mteb_version():
        logger.warning(
            "snapshot %s was written with mteb %s, running %s",
            folder,
            manifest.get("mteb_version"),
            mteb_version(),
        )
    return _read_node(manifest["tree"], folder)


def arrow_table(dataset: Dataset) -> pa.Table:
    """The rows of a Dataset as one Arrow table, in order (helper for tests and callers)."""
    return dataset.with_format("arrow")[:]


ENCODED_DIR = "encoded"


def encoded_texts_file(name: str, split: str, *, cache_dir: Path) -> Path:
    """Where the texts that the evaluation of one split of task `name` encodes are kept."""
    return layout.snapshot_dir(cache_dir, name) / ENCODED_DIR / f"{split}.parquet"


def read_encoded_texts(name: str, split: str, *, cache_dir: Path) -> list[str] | None:
    """The recorded texts of one split (unique, in first-encoded order), or None when not recorded.

    A list recorded under another mteb version is not trusted: mteb's sampling may have changed.
    """
    path = encoded_texts_file(name, split, cache_dir=cache_dir)
    if read_snapshot_manifest(path.parent.parent) is None or not path.is_file():
        return None
    try:
        table = pq.read_table(path)
    except (OSError, pa.ArrowException):
        logger.warning("ignoring unreadable recorded texts %s", path)
        return None
    meta = table.schema.metadata or {}
    if meta.get(b"mteb_version", b"").decode() != mteb_version():
        logger.info("texts of %s/%s were recorded with another mteb version", name, split)
        return None
    return [str(t) for t in table.column("text").to_pylist()]


def write_encoded_texts(
    name: str,
    split: str,
    texts: list[str],
    *,
    cache_dir: Path,
    sides: Sequence[str] | None = None,
) -> Path | None:
    """Keep the recorded texts of one split beside a complete snapshot (atomically: temp, rename).

    `sides` gives each text's sides as mteb encoded it ("query", "document", "query,document",
    or "" for tasks without sides), kept in a `sides` column (`read_text_sides`).
    Returns None (and keeps nothing) when the task has no complete snapshot to attach them to.
    """
    path = encoded_texts_file(name, split, cache_dir=cache_dir)
    if read_snapshot_manifest(path.parent.parent) is None:
        return None
    path.parent.mkdir(parents=True, exist_ok=True)
    columns = {"text": pa.array(texts, pa.string())}
    if sides is not None:
        if len(sides) != len(texts):
            raise ValueError(f"{len(sides)} sides for {len(texts)} texts")
        columns["sides"] = pa.array(list(sides), pa.string())
    table = pa.table(columns)
    table = table.replace_schema_metadata({"mteb_version": mteb_version(), "split": split})
    files.remove_stale_temps(path.parent)
    with files.atomic_path(path) as tmp:
        pq.write_table(table, tmp)
    return path


def read_text_sides(name: str, split: str, *, cache_dir: Path) -> dict[str, tuple[str, ...]] | None:
    """{text: the sides mteb encoded it as} of one recorded split (an empty tuple: no side), or
    None when the split was not recorded, or recorded before sides were kept."""
    if read_encoded_texts(name, split, cache_dir=cache_dir) is None:
        return None
    table = pq.read_table(encoded_texts_file(name, split, cache_dir=cache_dir))
    if "sides" not in table.column_names:
        return None
    texts, sides = table.column("text").to_pylist(), table.column("sides").to_pylist()
    return {
        str(t): tuple(s for s in str(v).split(",") if s) for t, v in zip(texts, sides, strict=True)
    }


def merge_split_texts(per_split: Iterable[list[str]]) -> list[str]:
    """The texts of several splits' lists, each once, in first-seen order."""
    return list(dict.fromkeys(t for texts in per_split for t in texts))


def recorded_task_texts(name: str, *, cache_dir: Path) -> dict[str, list[str]] | None:
    """{split: texts} of every eval split of a snapshot whose texts were all recorded, else None.

    Read without mteb or datasets, so a task met before costs milliseconds, not seconds.
    """
    manifest = read_snapshot_manifest(layout.snapshot_dir(cache_dir, name))
    if manifest is None or manifest.get("task") != name or not manifest.get("eval_splits"):
        return None
    out: dict[str, list[str]] = {}
    for split in manifest["eval_splits"]:
        texts = read_encoded_texts(name, split, cache_dir=cache_dir)
        if texts is None:
            return None
        out[split] = texts
    return out


# END
