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
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from moee_pipeline.cache import files
from moee_pipeline.cache.layout import iter_entries, model_slug, task_dir
from moee_pipeline.cache.files import write_json_atomic as write_json_atomic  # one writer
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
#: What to do about a damaged entry, said by every error that finds one.
REPAIR_HINT = "run `moee verify --repair`, then `moee extract`"


class CacheError(MoeeError):
    """A cache entry is missing, incomplete or inconsistent; the message says what to run."""


def text_id(text: str) -> str:
    """The key of a text in the cache: sha256 of its UTF-8 bytes, hex."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


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


def write_part(table: pa.Table, path: Path) -> dict[str, Any]:
    """Write a part atomically (temp, fsync, rename) and return its manifest record.

    The record's SHA-256 is of exactly the bytes written (encoded in memory, hashed, then
    written), so later damage to the file is caught without decoding it.
    """
    sink = pa.BufferOutputStream()
    floats = [f"{name}.list.element" for name in VECTOR_COLUMNS if name in table.column_names]
    pq.write_table(
        table,
        sink,
        compression="zstd",
        use_dictionary=False,
        use_byte_stream_split=floats,
        write_statistics=["text_id", "n_tokens"],
    )
    data = memoryview(sink.getvalue())
    files.write_bytes_atomic(path, data, point="part")
    return {"rows": table.num_rows, "bytes": data.nbytes, "sha256": files.sha256_bytes(data)}


def part_record(path: Path) -> dict[str, Any]:
    """The manifest record of a part already on disk (one a killed run completed)."""
    return {
        "rows": pq.read_metadata(path).num_rows,
        "bytes": path.stat().st_size,
        "sha256": files.sha256_file(path),
    }


def read_manifest(directory: Path, name: str = MANIFEST) -> dict[str, Any] | None:
    """The manifest of a task folder, or None while the task is incomplete.

    Raises:
        CacheError: the manifest is not a JSON object, or a newer version of this package
            wrote it.
    """
    path = directory / name
    if not path.is_file():
        return None
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError) as error:
        logger.info("reading %s: %s", path, error)
        raise CacheError(f"{path} is not valid JSON: {REPAIR_HINT}") from None
    if not isinstance(manifest, dict):
        raise CacheError(f"{path} is not a JSON object: {REPAIR_HINT}")
    version = manifest.get("schema_version", SCHEMA_VERSION)
    if not isinstance(version, int) or version > SCHEMA_VERSION:
        raise CacheError(
            f"{path} has schema_version {version!r}, newer than this moee-pipeline reads "
            f"({SCHEMA_VERSION}): upgrade moee-pipeline"
        )
    return manifest


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
    #: Why the manifest cannot be used (not JSON, a newer schema), or None.
    problem: str | None = None


def read_features(
    cache_dir: Path,
    *,
    model: str,
    prompt_id: str,
    task: str,
    columns: Sequence[str] = ("hs_last", "rw_last"),
    check_hashes: bool = True,
) -> Features:
    """Read a complete task's features in one pass over its parts, checked against the manifest.

    Every part must be the one the manifest recorded: same size, same row count and (unless
    `check_hashes` is False) the same SHA-256, hashed from the bytes in memory before pyarrow
    decodes them, so the check costs CPU but no second read. A damaged cache is refused,
    never half evaluated.

    Raises:
        CacheError: the task was never extracted, is incomplete, belongs to another model,
            prompt or task, or its parts disagree with the manifest.
    """
    directory = task_dir(cache_dir, model=model, prompt_id=prompt_id, task=task)
    manifest = read_manifest(directory)
    hint = f"run `moee extract --model {model} --prompt {prompt_id} --tasks {task}`"
    if manifest is None:
        state = f"incomplete ({len(part_files(directory))} parts, no manifest)"
        what = state if directory.is_dir() else "not extracted"
        raise CacheError(f"{task} [{prompt_id}] is {what}: {hint}")
    unknown = [c for c in columns if c not in VECTOR_COLUMNS]
    if unknown:
        raise CacheError(f"unknown feature columns {unknown}; choose from {list(VECTOR_COLUMNS)}")
    check_identity(manifest, directory=directory, model=model, prompt_id=prompt_id, task=task)
    records: dict[str, Any] | None = manifest.get("parts")
    parts = part_files(directory)
    if records is not None:
        listed = {directory / name for name in records}
        extra = sorted(set(parts) - listed)
        missing = sorted(listed - set(parts))
        if extra or missing:
            path = (extra or missing)[0]
            what = "is not in the manifest" if extra else "is in the manifest but missing"
            raise CacheError(f"{path} {what}: {REPAIR_HINT}")
    tables = [
        _read_checked_part(
            part,
            None if records is None else records[part.name],
            columns=["text_id", *columns],
            check_hash=check_hashes,
        )
        for part in parts
    ]
    table = pa.concat_tables(tables) if tables else None
    rows = 0 if table is None else table.num_rows
    if table is None or rows != manifest.get("rows"):
        raise CacheError(
            f"{directory}: parts hold {rows} rows but the manifest says "
            f"{manifest.get('rows')}: {REPAIR_HINT}"
        )
    widths = {"rw": manifest.get("n_moe_layers", 0) * manifest.get("n_experts", 0)}
    widths["hs"] = manifest.get("hidden_size", 0)
    for name in columns:
        width = table.schema.field(name).type.list_size
        if widths[name[:2]] and width != widths[name[:2]]:
            raise CacheError(
                f"{directory}: {name} is {width} wide, the manifest says {widths[name[:2]]}: "
                f"{REPAIR_HINT}"
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


def check_identity(
    manifest: Mapping[str, Any], *, directory: Path, model: str, prompt_id: str, task: str
) -> None:
    """Refuse an entry whose manifest names another model, prompt or task than its folder.

    A task folder moved or copied under another model's folder must not be scored as that model.
    """
    found = {
        "model": model_slug(str(manifest["model"])) if manifest.get("model") else None,
        "prompt": manifest.get("prompt_id"),
        "task": manifest.get("task"),
    }
    wanted = {"model": model_slug(model), "prompt": prompt_id, "task": task}
    wrong = {k: v for k, v in found.items() if v is not None and v != wanted[k]}
    if wrong:
        what = ", ".join(f"{k}={v}" for k, v in wrong.items())
        raise CacheError(
            f"{directory} holds features of {what}, not of its folder: move it back or "
            "re-extract it with --overwrite"
        )


def _read_checked_part(
    path: Path, record: Mapping[str, Any] | None, *, columns: Sequence[str], check_hash: bool
) -> pa.Table:
    """One part, refused unless its bytes and rows are what the manifest recorded."""

    def damaged(what: str) -> CacheError:
        return CacheError(f"{path} {what}: {REPAIR_HINT}")

    source: Any = path
    if record is not None:
        size = path.stat().st_size
        if size != record.get("bytes"):
            raise damaged(f"is {size} bytes, the manifest says {record.get('bytes')}")
        if check_hash:
            data = path.read_bytes()
            if files.sha256_bytes(data) != record.get("sha256"):
                raise damaged("does not match its SHA-256 in the manifest")
            source = pa.BufferReader(data)
    try:
        table = pq.read_table(source, columns=list(columns))
    except (pa.ArrowException, OSError) as error:
        logger.info("reading %s: %s", path, error)
        raise damaged("cannot be read (damaged, or lacking a column)") from None
    if record is not None and table.num_rows != record.get("rows"):
        raise damaged(f"holds {table.num_rows} rows, the manifest says {record.get('rows')}")
    return table


def list_cached(cache_dir: Path, *, model: str | None = None) -> list[CacheEntry]:
    """An inventory of the cache, optionally for one model."""
    wanted = model_slug(model) if model else None
    entries = []
    for key, directory in iter_entries(cache_dir):
        if wanted and key.model_slug != wanted:
            continue
        problem = None
        try:
            manifest = read_manifest(directory)
        except CacheError as error:
            manifest, problem = None, str(error)
        entries.append(
            CacheEntry(
                model_slug=key.model_slug,
                prompt_id=key.prompt_id,
                task=key.task,
                path=directory,
                complete=manifest is not None,
                manifest=manifest,
                problem=problem,
            )
        )
    return entries
