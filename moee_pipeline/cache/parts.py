"""The part file: its schema, its vectors, writing one, and the one checked read of one.

A part is one Parquet file of an entry's rows (`part-NNNNN.parquet`), written to a temp file and
renamed, its size, rows and SHA-256 recorded in the entry's manifest. Reading one is checked the
same way for scoring (`read_features`) and auditing (`moee verify`): bytes first (size, then the
SHA-256 of the bytes in memory), because a damaged Parquet file can crash the reader, so nothing
is decoded before its hash matches; then rows, columns and vector widths. The audit adds only
what scoring cannot afford on every read (finiteness; duplicates across parts, in verify).

Vectors are stored in the run's `store_dtype` (`moee extract --store-dtype`, recorded in every
part's metadata and the manifest) and always read back as float32. float16 is Arrow's native
half float; bfloat16 has no Arrow type, so it is stored as float32 values rounded to bfloat16:
every reader (pandas, DuckDB, polars) sees plain floats, and with BYTE_STREAM_SPLIT the two
zero low bytes of each value compress to almost nothing.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from moee_pipeline.cache import files
from moee_pipeline.cache.errors import FileProblem
from moee_pipeline.errors import first_line
from moee_pipeline.vocabulary import STORE_DTYPES, StoreDtype, check_choice

logger = logging.getLogger(__name__)

#: The version of the part and manifest format; a cache of a newer one is refused.
SCHEMA_VERSION = 1
#: The schema metadata key holding the run's settings and shapes in every part.
METADATA_KEY = b"moee"
#: The vectors every part holds.
VECTOR_COLUMNS = ("rw_last", "rw_mean", "hs_last", "hs_mean")
#: The vectors a part extracted with `--hs-layers all` holds besides: every decoder layer's
#: hidden state (layer-major, n_layers x hidden_size), last token and mean-pooled.
HS_LAYER_COLUMNS = ("hs_layers_last", "hs_layers_mean")
#: Every vector column a part may hold.
ALL_VECTOR_COLUMNS = (*VECTOR_COLUMNS, *HS_LAYER_COLUMNS)
#: What every part holds besides its vectors; `text_id` is the key scoring looks texts up by.
ROW_COLUMNS = ("text_id", "text", "n_tokens", "truncated")
PART_GLOB = "part-*.parquet"
#: The metadata key of the type vectors are stored in; parts and manifests without one: float32.
STORE_DTYPE_KEY = "store_dtype"
#: The Arrow value type each store dtype writes (bfloat16: float32 values rounded to bfloat16).
VALUE_TYPES: dict[StoreDtype, pa.DataType] = {
    "float32": pa.float32(),
    "float16": pa.float16(),
    "bfloat16": pa.float32(),
}
#: The largest finite magnitude of each store dtype (float32 values beyond it do not fit).
DTYPE_MAX: dict[StoreDtype, float] = {
    "float32": float(np.finfo(np.float32).max),
    "float16": float(np.finfo(np.float16).max),
    "bfloat16": float.fromhex("0x1.fep127"),
}
#: Rows per Parquet row group of a part: the unit a chunked read decodes (`cache/source.py`),
#: so a read never decodes more than this many rows however large `--rows-per-shard` makes a
#: part. Readers of whole files (pandas, DuckDB, `read_part`) see the same table either way.
ROW_GROUP_ROWS = 1024


def text_id(text: str) -> str:
    """The key of a text in the cache: sha256 of its UTF-8 bytes, hex."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def hs_columns(meta: Mapping[str, Any]) -> tuple[str, ...]:
    """The hidden-state columns an entry holds, as its manifest (or a part) records them; an
    entry made before they were recorded holds the last layer's only."""
    recorded = meta.get("hs_columns")
    return tuple(recorded) if recorded else ("hs_last", "hs_mean")


def vector_columns(meta: Mapping[str, Any]) -> tuple[str, ...]:
    """The vector columns of an entry's parts: RW, and the HS columns it records."""
    held = set(hs_columns(meta))
    return tuple(c for c in ALL_VECTOR_COLUMNS if c.startswith("rw") or c in held)


def vector_widths(meta: Mapping[str, Any]) -> dict[str, int]:
    """Each vector column's width from a run's shapes (0 where they are not recorded).

    RW is layer-major router logits (n_moe_layers x n_experts), HS the hidden state, the
    per-layer HS every decoder layer's, layer-major (n_layers x hidden_size).
    """
    rw = int(meta.get("n_moe_layers") or 0) * int(meta.get("n_experts") or 0)
    hs = int(meta.get("hidden_size") or 0)
    layers = int(meta.get("n_layers") or 0) * hs
    widths = {name: rw if name.startswith("rw") else hs for name in VECTOR_COLUMNS}
    return {**widths, **dict.fromkeys(HS_LAYER_COLUMNS, layers)}


def store_dtype(meta: Mapping[str, Any]) -> StoreDtype:
    """The type a run stores its vectors in, from its metadata or manifest (none: float32).

    Raises:
        ValueError: a type this package does not know (a newer one wrote it).
    """
    dtype = meta.get(STORE_DTYPE_KEY) or "float32"
    for known in STORE_DTYPES:
        if dtype == known:
            return known
    check_choice("store dtype", dtype, STORE_DTYPES)  # raises: a type no known one equals
    raise AssertionError(dtype)


def round_bfloat16(matrix: np.ndarray) -> np.ndarray:
    """float32 values rounded to the nearest bfloat16 (ties to even), still as float32.

    bfloat16 is the top half of a float32: add half of the dropped half (plus the tie bit) to
    the bit pattern, then clear the low 16 bits. A finite value past bfloat16's largest rounds
    to inf, which `overflow_rows` catches.
    """
    bits = np.ascontiguousarray(matrix, dtype=np.float32).view(np.uint32)
    keep = (bits >> np.uint32(16)) & np.uint32(1)
    rounded = (bits + np.uint32(0x7FFF) + keep) & np.uint32(0xFFFF0000)
    finite = np.isfinite(matrix)
    return np.where(finite, rounded.view(np.float32), matrix).astype(np.float32, copy=False)


def stored_values(matrix: np.ndarray, dtype: StoreDtype) -> np.ndarray:
    """A float32 matrix as `dtype` stores it (float16, or float32 rounded to bfloat16)."""
    matrix = np.ascontiguousarray(matrix, dtype=np.float32)
    if dtype == "float16":
        with np.errstate(over="ignore"):  # overflow is refused by `overflow_rows`, not warned
            return matrix.astype(np.float16)
    return round_bfloat16(matrix) if dtype == "bfloat16" else matrix


def overflow_rows(matrix: np.ndarray, dtype: StoreDtype) -> np.ndarray:
    """Which rows hold a finite value that `dtype` cannot hold (it would become inf)."""
    finite = np.isfinite(matrix)
    with np.errstate(over="ignore", invalid="ignore"):
        beyond = finite & ~np.isfinite(stored_values(matrix, dtype))
    return np.asarray(beyond.any(axis=1) if beyond.ndim == 2 else beyond, dtype=bool)


def vector_array(matrix: np.ndarray, dtype: StoreDtype = "float32") -> pa.FixedSizeListArray:
    """A (n, d) float32 matrix as an Arrow fixed-size list column of `dtype`.

    Raises:
        ValueError: a finite value beyond `dtype`'s range (never stored as inf).
    """
    matrix = np.ascontiguousarray(matrix, dtype=np.float32)
    bad = overflow_rows(matrix, dtype)
    if bad.any():
        raise ValueError(
            f"{int(bad.sum())} row(s) hold values beyond {dtype}'s range (+-{DTYPE_MAX[dtype]:.6g})"
        )
    values = stored_values(matrix, dtype)
    return pa.FixedSizeListArray.from_arrays(pa.array(values.reshape(-1)), matrix.shape[1])


def column_matrix(column: pa.ChunkedArray | pa.Array) -> np.ndarray:
    """An Arrow (fixed-size) list column as a (n, d) float32 matrix, whatever type it is stored
    in (float16 is widened exactly)."""
    if isinstance(column, pa.ChunkedArray):
        column = column.combine_chunks()
    width = column.type.list_size
    values = column.flatten().to_numpy(zero_copy_only=False)
    return values.astype(np.float32, copy=False).reshape(-1, width)


def feature_schema(metadata: Mapping[str, Any]) -> pa.Schema:
    """The part schema of a run; `metadata` (settings and shapes) travels in every file."""
    widths = vector_widths(metadata)
    value_type = VALUE_TYPES[store_dtype(metadata)]
    fields = [
        pa.field("text_id", pa.string(), nullable=False),
        pa.field("text", pa.string(), nullable=False),
        pa.field("n_tokens", pa.int32(), nullable=False),
        pa.field("truncated", pa.bool_(), nullable=False),
    ]
    for name in vector_columns(metadata):
        fields.append(pa.field(name, pa.list_(value_type, widths[name]), nullable=False))
    return pa.schema(fields, metadata={METADATA_KEY: json.dumps(dict(metadata), sort_keys=True)})


def schema_metadata(schema: pa.Schema) -> dict[str, Any]:
    """The run settings stored in a part's schema."""
    raw = (schema.metadata or {}).get(METADATA_KEY)
    return json.loads(raw) if raw else {}


def part_metadata(path: Path) -> dict[str, Any]:
    """The run settings stored in a part file, read from its footer (no data decoded)."""
    return schema_metadata(pq.read_schema(path))


def part_prefix(shard: tuple[int, int]) -> str:
    """How the parts of shard (I, N) are named: `part-NNNNN`, or `part-IofN-NNNNN` when N > 1."""
    return "part" if shard[1] == 1 else f"part-{shard[0]}of{shard[1]}"


def part_files(directory: Path) -> list[Path]:
    """Complete part files of an entry's folder, in name order."""
    return sorted(directory.glob(PART_GLOB)) if directory.is_dir() else []


def write_part(
    table: pa.Table, path: Path, *, row_group_rows: int = ROW_GROUP_ROWS
) -> dict[str, Any]:
    """Write a part atomically (temp, fsync, rename) and return its manifest record.

    The record's SHA-256 is of exactly the bytes written (encoded in memory, hashed, then
    written), so later damage to the file is caught without decoding it. Rows are stored in
    row groups of `row_group_rows` (tests make them small to see chunked reads).
    """
    sink = pa.BufferOutputStream()
    floats = [f"{name}.list.element" for name in ALL_VECTOR_COLUMNS if name in table.column_names]
    pq.write_table(
        table,
        sink,
        row_group_size=row_group_rows,
        compression="zstd",
        use_dictionary=False,
        use_byte_stream_split=floats,
        write_statistics=["text_id", "n_tokens"],
    )
    data = memoryview(sink.getvalue())
    files.write_bytes_atomic(path, data)
    return {"rows": table.num_rows, "bytes": data.nbytes, "sha256": files.sha256_bytes(data)}


def part_record(path: Path) -> dict[str, Any]:
    """The manifest record of a part already on disk (one a killed run completed)."""
    return {
        "rows": pq.read_metadata(path).num_rows,
        "bytes": path.stat().st_size,
        "sha256": files.sha256_file(path),
    }


def _check_bytes(path: Path, record: Mapping[str, Any] | None) -> None:
    """A file, of the size its record says (the checks before any byte is hashed or decoded)."""
    kind = files.not_a_file(path)
    if kind is not None:
        raise FileProblem(path, f"is {kind}, not a part file")
    if record is not None:
        size = path.stat().st_size
        if size != record.get("bytes"):
            raise FileProblem(path, f"is {size} bytes, the manifest says {record.get('bytes')}")


def _hash_problem(path: Path) -> FileProblem:
    return FileProblem(path, "does not match its SHA-256 in the manifest (damaged)")


def _check_columns(
    path: Path, schema: pa.Schema, columns: Sequence[str] | None, meta: Mapping[str, Any] | None
) -> None:
    held = vector_columns(meta if meta is not None else schema_metadata(schema))
    needed = list(columns) if columns is not None else ["text_id", *held]
    missing = [name for name in needed if name not in schema.names]
    if missing:
        what = f"cannot be read as features (it lacks column(s) {', '.join(missing)})"
        raise FileProblem(path, what)


def _check_layout(
    path: Path,
    schema: pa.Schema,
    rows: int,
    record: Mapping[str, Any] | None,
    meta: Mapping[str, Any] | None,
    names: Sequence[str],
) -> None:
    """Rows against the record; the part's store dtype against its entry's (`meta`; None: its
    own); the type and width of each vector column of `names` (those read) against `meta`."""
    if record is not None and rows != record.get("rows"):
        raise FileProblem(path, f"holds {rows} rows, the manifest says {record.get('rows')}")
    own = schema_metadata(schema)
    expected = meta if meta is not None else own
    try:
        dtype, stored = store_dtype(expected), store_dtype(own)
    except ValueError as error:
        raise FileProblem(path, f"cannot be read ({error})", fix="upgrade moee-pipeline") from None
    if stored != dtype:
        what = f"holds {stored} features, the rest of its entry {dtype} (one entry, one dtype)"
        raise FileProblem(path, what)
    widths = vector_widths(expected)
    value_type = VALUE_TYPES[dtype]
    for name in (c for c in ALL_VECTOR_COLUMNS if c in names):
        kind = schema.field(name).type
        if not pa.types.is_fixed_size_list(kind) or kind.value_type != value_type:
            raise FileProblem(path, f"has {name} of type {kind}, not a {dtype} vector")
        if widths[name] and kind.list_size != widths[name]:
            raise FileProblem(path, f"has {name} {kind.list_size} wide, expected {widths[name]}")


def read_part(
    path: Path,
    record: Mapping[str, Any] | None,
    *,
    columns: Sequence[str] | None = None,
    meta: Mapping[str, Any] | None = None,
    check_hash: bool = True,
) -> pa.Table:
    """One part, refused unless it is what its manifest recorded and holds usable features.

    In order, each check only once the one before passed: a file (not a folder named like
    one); size and (unless `check_hash` is False) SHA-256 against `record`; decoding; the
    columns asked for (None: all, of which `text_id` and every vector column must be there);
    rows against `record`; the part's store dtype against `meta` (the manifest; None: the
    part's own metadata), so an entry never mixes dtypes; each vector column's type and width.
    Without a record (a manifest from before records) only decoding, columns and widths count.

    Raises:
        FileProblem: the first check that failed, naming the part and what to run.
    """
    _check_bytes(path, record)
    source: Any = path
    if record is not None and check_hash:
        data = path.read_bytes()
        if files.sha256_bytes(data) != record.get("sha256"):
            raise _hash_problem(path)
        source = pa.BufferReader(data)
    try:
        with pq.ParquetFile(source) as handle:
            _check_columns(path, handle.schema_arrow, columns, meta)
            table = handle.read(columns=list(columns) if columns is not None else None)
    except (pa.ArrowException, OSError) as error:
        logger.info("reading %s: %s", path, error)
        raise FileProblem(path, f"cannot be read ({first_line(error, limit=80)})") from None
    _check_layout(path, table.schema, table.num_rows, record, meta, table.column_names)
    return table


def check_part(
    path: Path,
    record: Mapping[str, Any] | None,
    *,
    columns: Sequence[str] | None = None,
    meta: Mapping[str, Any] | None = None,
    check_hash: bool = True,
) -> pq.FileMetaData:
    """`read_part`'s checks without decoding any row: for reading the part later in chunks.

    The SHA-256 is computed reading the file in small pieces, so a part of any size is checked
    in bounded memory; then only the footer is decoded (columns, rows, widths). Unlike
    `read_part`, the bytes read later are not the ones hashed: a part replaced between the
    check and a chunked read is not caught (parts are written once and never changed in place).

    Raises:
        FileProblem: the first check that failed, in `read_part`'s words.
    """
    _check_bytes(path, record)
    if record is not None and check_hash and files.sha256_file(path) != record.get("sha256"):
        raise _hash_problem(path)
    try:
        metadata = pq.read_metadata(path)
        schema = metadata.schema.to_arrow_schema()
    except (pa.ArrowException, OSError) as error:
        logger.info("reading %s: %s", path, error)
        raise FileProblem(path, f"cannot be read ({first_line(error, limit=80)})") from None
    _check_columns(path, schema, columns, meta)
    names = list(columns) if columns is not None else schema.names
    _check_layout(path, schema, metadata.num_rows, record, meta, names)
    return metadata


def audit_part(table: pa.Table) -> list[str]:
    """What a full audit adds to `read_part` on a readable part: a problem per vector column
    holding NaN or inf (the extraction refuses them, so one here was written by something else),
    or, in a bfloat16 part, values that are not bfloat16 (written by something else too)."""
    bfloat16 = store_dtype(schema_metadata(table.schema)) == "bfloat16"
    problems = []
    for name in (c for c in ALL_VECTOR_COLUMNS if c in table.column_names):
        matrix = column_matrix(table[name])
        if not np.isfinite(matrix).all():
            problems.append(f"{name} holds NaN or inf values")
        elif bfloat16 and (matrix.view(np.uint32) & np.uint32(0xFFFF)).any():
            problems.append(f"{name} holds values that are not bfloat16, as its metadata says")
    return problems
