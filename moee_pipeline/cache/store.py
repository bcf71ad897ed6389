"""The Parquet feature cache: layout, crash-safe shard writing, manifests and fast reading.

Layout (hive-style, so pyarrow.dataset, DuckDB and polars read it as one table)::

    <cache>/features/model=<slug>/prompt=<prompt-id>/task=<Task>/part-NNNNN.parquet
    <cache>/features/model=<slug>/prompt=<prompt-id>/task=<Task>/_manifest.json

A part file only ever appears complete (written to a dot-file, then renamed), and the manifest
is written last: its presence is what marks a task complete.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from moee_pipeline.errors import MoeeError

logger = logging.getLogger(__name__)

SCHEMA_VERSION = 1
METADATA_KEY = b"moee"
MANIFEST = "_manifest.json"
VECTOR_COLUMNS = ("rw_last", "rw_mean", "hs_last", "hs_mean")
PART_GLOB = "part-*.parquet"
#: Settings that change the features: a cache entry made with others is never reused, and
#: scores record a fingerprint of them so rows of different features never mix.
FEATURE_SETTINGS = ("model", "revision", "prompt_template", "max_length", "quantization", "dtype")


class CacheError(MoeeError):
    """A cache entry is missing, incomplete or inconsistent; the message says what to run."""


def text_id(text: str) -> str:
    """The key of a text in the cache: sha256 of its UTF-8 bytes, hex."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def model_slug(model: str) -> str:
    """A path-safe name for a model: Hub ids keep both parts, local folders their own name."""
    path = Path(model).expanduser()
    name = path.name if (path.is_dir() or model.startswith(("/", ".", "~"))) else model
    return re.sub(r"[^A-Za-z0-9._-]", "_", name.replace("/", "--"))


def cache_root(cache_dir: Path | str | None = None) -> Path:
    """The cache root: explicit, else $MOEE_CACHE_DIR, else ./cache."""
    return Path(cache_dir or os.environ.get("MOEE_CACHE_DIR") or "cache")


def task_dir(cache_dir: Path, *, model: str, prompt_id: str, task: str) -> Path:
    """The folder holding one (model, prompt, task)'s parts and manifest."""
    return (
        Path(cache_dir)
        / "features"
        / f"model={model_slug(model)}"
        / f"prompt={prompt_id}"
        / f"task={task}"
    )


def vector_array(matrix: np.ndarray) -> pa.FixedSizeListArray:
    """A (n, d) float32 matrix as an Arrow fixed-size list column, without copying rows."""
    matrix = np.ascontiguousarray(matrix, dtype=np.float32)
    return pa.FixedSizeListArray.from_arrays(pa.array(matrix.reshape(-1)), matrix.shape[1])


def column_matrix(column: pa.ChunkedArray | pa.Array) -> np.ndarray:
    """An Arrow (fixed-size) list column as a (n, d) float32 matrix."""
    if isinstance(column, pa.ChunkedArray):
        column = column.combine_chunks()
    width = column.type.list_size
    return column.flatten().to_numpy(zero_copy_only=False).reshape(-1, width)


def feature_schema(*, rw_dim: int, hidden_size: int, metadata: Mapping[str, Any]) -> pa.Schema:
    """The part-file schema; `metadata` (run settings and shapes) travels in every file."""
    fields = [
        pa.field("text_id", pa.string(), nullable=False),
        pa.field("text", pa.string(), nullable=False),
        pa.field("n_tokens", pa.int32(), nullable=False),
        pa.field("truncated", pa.bool_(), nullable=False),
    ]
    for name in VECTOR_COLUMNS:
        width = rw_dim if name.startswith("rw") else hidden_size
        fields.append(pa.field(name, pa.list_(pa.float32(), width), nullable=False))
    return pa.schema(fields, metadata={METADATA_KEY: json.dumps(dict(metadata), sort_keys=True)})


def schema_metadata(schema: pa.Schema) -> dict[str, Any]:
    """The run settings stored in a part file's schema."""
    raw = (schema.metadata or {}).get(METADATA_KEY)
    return json.loads(raw) if raw else {}


def part_files(directory: Path) -> list[Path]:
    """Complete part files of a task folder, in name order."""
    return sorted(directory.glob(PART_GLOB)) if directory.is_dir() else []


def write_json_atomic(path: Path, payload: Mapping[str, Any]) -> None:
    """Write JSON so that readers see either the old file or the whole new one."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")  # shards may write one at once
    tmp.write_text(json.dumps(dict(payload), indent=2, sort_keys=True) + "\n", encoding="utf-8")
    tmp.replace(path)


def write_part(table: pa.Table, path: Path) -> None:
    """Write a part to a hidden temp file, fsync, rename: a kill never leaves half a part."""
    tmp = path.with_name(f".{path.name}.tmp")
    floats = [f"{name}.list.element" for name in VECTOR_COLUMNS if name in table.column_names]
    pq.write_table(
        table,
        tmp,
        compression="zstd",
        use_dictionary=False,
        use_byte_stream_split=floats,
        write_statistics=["text_id", "n_tokens"],
    )
    with tmp.open("rb") as handle:
        os.fsync(handle.fileno())
    tmp.replace(path)


def clear_temp_files(directory: Path, *, prefix: str = "part") -> None:
    """Remove part temp files a killed run left behind; they were never part of the cache.

    Only files of `prefix` go: another shard may be writing its own at this moment.
    """
    for tmp in directory.glob(f".{prefix}-[0-9]*.tmp"):
        tmp.unlink(missing_ok=True)


def read_manifest(directory: Path, name: str = MANIFEST) -> dict[str, Any] | None:
    """The manifest of a task folder, or None while the task is incomplete."""
    path = directory / name
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else None


def existing_text_ids(directory: Path) -> set[str]:
    """Text ids already stored in complete parts, so a rerun extracts only what is missing."""
    ids: set[str] = set()
    for part in part_files(directory):
        ids.update(pq.read_table(part, columns=["text_id"]).column(0).to_pylist())
    return ids


@dataclass(frozen=True)
class Features:
    """One task's cached features: row-aligned text ids and float32 matrices."""

    text_ids: list[str]
    arrays: dict[str, np.ndarray]
    manifest: dict[str, Any]


@dataclass(frozen=True)
class CacheEntry:
    """One (model, prompt, task) folder of the cache."""

    model_slug: str
    prompt_id: str
    task: str
    path: Path
    complete: bool
    manifest: dict[str, Any] | None


def read_features(
    cache_dir: Path,
    *,
    model: str,
    prompt_id: str,
    task: str,
    columns: Sequence[str] = ("hs_last", "rw_last"),
) -> Features:
    """Read a complete task's features in one pass over its parts.

    Raises:
        CacheError: the task was never extracted, is incomplete, or its parts disagree with
            the manifest.
    """
    directory = task_dir(cache_dir, model=model, prompt_id=prompt_id, task=task)
    manifest = read_manifest(directory)
    hint = f"run `moee extract --model {model} --prompt {prompt_id} --tasks {task}`"
    if manifest is None:
        state = f"incomplete ({len(part_files(directory))} parts, no manifest)"
        what = state if directory.is_dir() else "not extracted"
        raise CacheError(
            f"{task} for model={model_slug(model)} prompt={prompt_id} is {what}: {hint}"
        )
    unknown = [c for c in columns if c not in VECTOR_COLUMNS]
    if unknown:
        raise CacheError(f"unknown feature columns {unknown}; choose from {list(VECTOR_COLUMNS)}")
    tables = [pq.read_table(p, columns=["text_id", *columns]) for p in part_files(directory)]
    table = pa.concat_tables(tables)
    if table.num_rows != manifest["rows"]:
        raise CacheError(
            f"{directory}: parts hold {table.num_rows} rows but the manifest says "
            f"{manifest['rows']}; rerun with --overwrite"
        )
    arrays = {name: column_matrix(table.column(name)) for name in columns}
    return Features(table.column("text_id").to_pylist(), arrays, manifest)


def features_fingerprint(manifest: Mapping[str, Any]) -> str:
    """A short, stable fingerprint of the settings that produced a cache entry's features.

    The model enters as its slug, so a cache copied to another machine (where a local model's
    folder has another path) keeps its fingerprint.
    """
    settings = {k: manifest.get(k) for k in FEATURE_SETTINGS if k != "model"}
    settings["model"] = model_slug(str(manifest.get("model", "")))
    settings["schema_version"] = manifest.get("schema_version", SCHEMA_VERSION)
    blob = json.dumps(settings, sort_keys=True, default=str)
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()[:10]


def iter_task_dirs(cache_dir: Path) -> Iterator[Path]:
    """Every task folder under the cache root."""
    yield from sorted(Path(cache_dir).glob("features/model=*/prompt=*/task=*"))


def list_cached(cache_dir: Path, *, model: str | None = None) -> list[CacheEntry]:
    """An inventory of the cache, optionally for one model."""
    wanted = model_slug(model) if model else None
    entries = []
    for directory in iter_task_dirs(cache_dir):
        slug = directory.parent.parent.name.removeprefix("model=")
        if wanted and slug != wanted:
            continue
        manifest = read_manifest(directory)
        entries.append(
            CacheEntry(
                model_slug=slug,
                prompt_id=directory.parent.name.removeprefix("prompt="),
                task=directory.name.removeprefix("task="),
                path=directory,
                complete=manifest is not None,
                manifest=manifest,
            )
        )
    return entries
