"""A cache entry's manifest, and reading its features: what scoring reads, checked as a whole.

An entry (one model, prompt and task; layout.py names its folder) is complete once
`_manifest.json` exists: it is written last, after every part, and records each part's size,
rows and SHA-256. Reading an entry checks the manifest against its folder (which parts, whose
features, how many rows) and every part through `parts.read_part`, the check `moee verify`
makes too, so a damaged cache is refused with the same line, never half evaluated.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from moee_pipeline.cache.errors import CacheError as CacheError  # what every reader raises
from moee_pipeline.cache.errors import FileProblem
from moee_pipeline.cache.files import not_a_file
from moee_pipeline.cache.files import write_json_atomic as write_json_atomic  # one writer
from moee_pipeline.cache.layout import iter_entries, model_name, model_slug, names_model, task_dir
from moee_pipeline.cache.parts import (
    ALL_VECTOR_COLUMNS,
    SCHEMA_VERSION,
    STORE_DTYPE_KEY,
    column_matrix,
    hs_columns,
    part_files,
    read_part,
    vector_columns,
)

logger = logging.getLogger(__name__)

MANIFEST = "_manifest.json"
#: Every manifest of an entry: the whole entry's and those of its finished shards.
MANIFEST_GLOB = "_manifest*.json"
_SHARD_MANIFEST = re.compile(r"_manifest\.(\d+)of(\d+)\.json")
#: Settings that change the features: a cache entry made with others is never reused, and
#: scores record a fingerprint of them so rows of different features never mix.
FEATURE_SETTINGS = (
    "model",
    "revision",
    "prompt_template",
    "max_length",
    "quantization",
    "dtype",
    STORE_DTYPE_KEY,
)
#: What a manifest without a setting (one older than the setting) was made with.
_SETTING_DEFAULTS = {STORE_DTYPE_KEY: "float32"}

#: A part file and its manifest record (None where the manifest records no parts).
Listed = tuple[Path, Mapping[str, Any] | None]


def manifest_name(shard: tuple[int, int]) -> str:
    """The manifest a run of shard (I, N) writes: `_manifest.json`, or `_manifest.IofN.json`."""
    index, count = shard
    return MANIFEST if count == 1 else f"_manifest.{index}of{count}.json"


def manifest_shard(name: str) -> tuple[int, int] | None:
    """(I, N) of a shard's manifest file name, or None for any other name."""
    match = _SHARD_MANIFEST.fullmatch(name)
    return None if match is None else (int(match.group(1)), int(match.group(2)))


def read_manifest(directory: Path, name: str = MANIFEST) -> dict[str, Any] | None:
    """The manifest of a task folder, or None while the task is incomplete.

    Raises:
        FileProblem: the manifest is not a JSON object or not a file at all (a folder: both
            repairable), or a newer version of this package wrote it (not: upgrade).
    """
    path = directory / name
    kind = not_a_file(path)
    if kind is not None:
        raise FileProblem(path, f"is {kind}, not a manifest file")
    if not path.is_file():
        return None
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError) as error:
        raise FileProblem(path, f"is not valid JSON ({error})") from None
    if not isinstance(manifest, dict):
        raise FileProblem(path, "is not a JSON object")
    version = manifest.get("schema_version", SCHEMA_VERSION)
    if not isinstance(version, int) or version > SCHEMA_VERSION:
        raise FileProblem(
            path,
            f"has schema_version {version!r}, newer than this moee-pipeline reads "
            f"({SCHEMA_VERSION})",
            fix="upgrade moee-pipeline",
        )
    return manifest


def combine_shards(
    directory: Path,
    count: int,
    last: Mapping[str, Any],
    *,
    pending: Mapping[str, Mapping[str, Any]] | None = None,
) -> bool:
    """When every shard of an entry has finished, write its whole manifest; whether it did.

    `last` is the manifest the whole one is based on (the shard that finished last);
    `pending` holds shard manifests by file name that are not in the folder yet (an overwrite
    moving its shard in: the whole manifest is written before that shard's own one).
    """
    pending = pending or {}
    names = [manifest_name((i, count)) for i in range(count)]
    manifests = [pending[n] if n in pending else read_manifest(directory, n) for n in names]
    done = [m for m in manifests if m is not None]
    if len(done) < count:
        return False
    rows = int(np.sum([m["rows"] for m in done]))
    seconds = float(np.sum([m["seconds"] for m in done]))
    records = {name: r for m in done for name, r in m.get("parts", {}).items()}
    write_json_atomic(
        directory / MANIFEST,
        {**last, "rows": rows, "seconds": seconds, "shard": [0, 1], "shards": count}
        | {"parts": records},
    )
    return True


def existing_text_ids(directory: Path) -> set[str]:
    """Text ids already stored in complete parts, so a rerun extracts only what is missing.

    Raises:
        FileProblem: a part that is not a file (a folder named like one) or cannot be read.
    """
    ids: set[str] = set()
    for part in part_files(directory):
        kind = not_a_file(part)
        if kind is not None:
            raise FileProblem(part, f"is {kind}, not a part file")
        try:
            ids.update(pq.read_table(part, columns=["text_id"]).column(0).to_pylist())
        except (pa.ArrowException, OSError) as error:
            logger.info("reading %s: %s", part, error)
            raise FileProblem(part, "cannot be read (damaged)") from None
    return ids


def listed_parts(
    directory: Path, records: Mapping[str, Any] | None, *, complete: bool
) -> tuple[list[Listed], list[FileProblem]]:
    """Each part of a folder with its manifest record, and where folder and manifest disagree.

    A complete entry (`complete`: its manifest lists its parts) lists every part, so another
    part is a problem (and not returned); a listed part that is missing always is.
    """
    records = records or {}
    parts = part_files(directory)
    problems = [
        FileProblem(part, "is not in the manifest")
        for part in parts
        if complete and part.name not in records
    ]
    present = {part.name for part in parts}
    problems += [
        FileProblem(directory / name, "is in the manifest but missing")
        for name in sorted(set(records) - present)
    ]
    listed = [(part, records.get(part.name)) for part in parts]
    return [(p, r) for p, r in listed if r is not None or not complete], problems


def rows_problem(directory: Path, manifest: Mapping[str, Any], rows: int) -> FileProblem | None:
    """A problem when the parts, each as recorded, do not add up to the manifest's rows."""
    if rows == manifest.get("rows"):
        return None
    what = f"says {manifest.get('rows')} rows, the parts hold {rows}"
    return FileProblem(directory / MANIFEST, what)


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


def checked_entry(
    cache_dir: Path, *, model: str, prompt_id: str, task: str, columns: Sequence[str]
) -> tuple[Path, dict[str, Any], list[Listed]]:
    """A complete entry's folder, manifest and parts with their records, checked as a whole
    before any part is read: complete, the columns known, the model, prompt and task its own,
    and the manifest listing exactly the parts there are.

    Raises:
        CacheError: as `read_features` says.
    """
    directory = task_dir(cache_dir, model=model, prompt_id=prompt_id, task=task)
    manifest = read_manifest(directory)
    hint = f"run `moee extract --model {model} --prompt {prompt_id} --tasks {task}`"
    if manifest is None:
        state = f"incomplete ({len(part_files(directory))} parts, no manifest)"
        what = state if directory.is_dir() else "not extracted"
        raise CacheError(f"{task} [{prompt_id}] is {what}: {hint}")
    unknown = [c for c in columns if c not in ALL_VECTOR_COLUMNS]
    if unknown:
        choices = list(ALL_VECTOR_COLUMNS)
        raise CacheError(f"unknown feature columns {unknown}; choose from {choices}")
    check_identity(manifest, directory=directory, model=model, prompt_id=prompt_id, task=task)
    absent = [c for c in columns if c not in vector_columns(manifest)]
    if absent:
        raise CacheError(
            f"{task} [{prompt_id}] holds {'/'.join(hs_columns(manifest))} only, not "
            f"{'/'.join(absent)}: run `moee extract --model {model} --prompt {prompt_id} "
            f"--tasks {task} --hs-layers all --extend`"
        )
    records = manifest.get("parts")
    listed, problems = listed_parts(directory, records, complete=records is not None)
    if problems:
        raise problems[0]
    if not listed:
        raise rows_problem(directory, manifest, 0) or FileProblem(
            directory / MANIFEST, "marks a complete entry without parts"
        )
    return directory, manifest, listed


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

    Every part must be the one the manifest recorded (`parts.read_part`: size, rows, widths and,
    unless `check_hashes` is False, the SHA-256 of the bytes in memory before pyarrow decodes
    them, so the check costs CPU but no second read), and the manifest must list exactly the
    parts there are. A damaged cache is refused, never half evaluated. Scoring reads through
    `cache.source.FeatureSource` instead, which makes the same checks and reads in chunks.

    Raises:
        CacheError: the task was never extracted, is incomplete, belongs to another model,
            prompt or task, or its parts disagree with the manifest (a `FileProblem` naming
            the file, as `moee verify` does).
    """
    directory, manifest, listed = checked_entry(
        cache_dir, model=model, prompt_id=prompt_id, task=task, columns=columns
    )
    tables = [
        read_part(
            part, record, columns=["text_id", *columns], meta=manifest, check_hash=check_hashes
        )
        for part, record in listed
    ]
    problem = rows_problem(directory, manifest, sum(t.num_rows for t in tables))
    if problem is not None:
        raise problem
    table = pa.concat_tables(tables)
    arrays = {name: column_matrix(table.column(name)) for name in columns}
    return Features(table.column("text_id").to_pylist(), arrays, manifest)


def feature_setting(manifest: Mapping[str, Any], key: str) -> Any:
    """One of FEATURE_SETTINGS as a manifest records it; an older manifest without it was made
    with its default (float32 vectors)."""
    value = manifest.get(key)
    return _SETTING_DEFAULTS.get(key) if value is None else value


def features_fingerprint(manifest: Mapping[str, Any]) -> str:
    """A short, stable fingerprint of the settings that produced a cache entry's features.

    The model enters as its slug, so a cache copied to another machine (where a local model's
    folder has another path) keeps its fingerprint. A setting at its default (float32 storage)
    is left out, so the entries made before the setting existed keep theirs.
    """
    settings = {
        k: feature_setting(manifest, k)
        for k in FEATURE_SETTINGS
        if k != "model" and feature_setting(manifest, k) != _SETTING_DEFAULTS.get(k, ())
    }
    settings["model"] = model_slug(str(manifest.get("model", "")))
    settings["schema_version"] = manifest.get("schema_version", SCHEMA_VERSION)
    blob = json.dumps(settings, sort_keys=True, default=str)
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()[:10]


def check_identity(
    manifest: Mapping[str, Any], *, directory: Path, model: str, prompt_id: str, task: str
) -> None:
    """Refuse an entry whose manifest names another model, prompt or task than its folder, or
    another model than the one the user named.

    A task folder moved or copied under another model's folder must not be scored as that
    model; nor may a name read another model's features where two names meet in one folder
    (`layout.names_model`: a Hub id and a local folder called `org--name`, say).
    """
    recorded = str(manifest["model"]) if manifest.get("model") else None
    found = {
        "model": model_slug(recorded) if recorded else None,
        "prompt": manifest.get("prompt_id"),
        "task": manifest.get("task"),
    }
    wanted = {"model": directory.parent.parent.name.removeprefix("model="), "prompt": prompt_id}
    wanted["task"] = task
    wrong = {k: v for k, v in found.items() if v is not None and v != wanted[k]}
    if wrong:
        what = ", ".join(f"{k}={v}" for k, v in wrong.items())
        raise CacheError(
            f"{directory} holds features of {what}, not of its folder: move it back or "
            "re-extract it with --overwrite"
        )
    if recorded and not names_model(model, recorded):
        raise CacheError(
            f"the cache's model={wanted['model']} holds features of model "
            f"{model_name(recorded)!r}, not of {model!r}: name the model as it was extracted, "
            "or extract this one into another --cache-dir"
        )


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
