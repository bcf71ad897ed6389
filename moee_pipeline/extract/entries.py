"""One cache entry, the same for both engines: its lock, what is left to extract, its writer, its
manifest.

An entry is one (model, prompt, task) folder. `plan_task` finds the texts not yet in a complete
part (a rerun, or another shard's share) and tokenizes them; `open_writer` gives the part
writer; `finish_task` writes the manifest last, which marks the entry complete. Sharded runs
(`--shard I/N`) each own their parts and manifest; the last to finish combines them.
"""

from __future__ import annotations

import contextlib
import logging
import re
import shutil
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from filelock import FileLock, Timeout
from transformers import PreTrainedTokenizerBase

from moee_pipeline.cache import files, layout, parts, store
from moee_pipeline.extract.batching import Encoded, encode_texts
from moee_pipeline.extract.reuse import check_same_settings
from moee_pipeline.extract.runinfo import shard_of
from moee_pipeline.extract.settings import ExtractionError, ExtractOptions, TaskSummary
from moee_pipeline.extract.writer import PartWriter
from moee_pipeline.prompts import Prompt

logger = logging.getLogger(__name__)


def _select_shard(texts: Sequence[str], shard: tuple[int, int]) -> list[str]:
    index, count = shard
    return [t for t in texts if shard_of(parts.text_id(t), count) == index]


def _part_prefix(shard: tuple[int, int]) -> str:
    return "part" if shard[1] == 1 else f"part-{shard[0]}of{shard[1]}"


def _check_same_run(directory: Path, metadata: dict[str, Any]) -> None:
    """Refuse to mix parts made with other settings into one task."""
    found = parts.part_files(directory)
    if found:
        check_same_settings(parts.part_metadata(found[0]), metadata, where=directory)


def _remove_own_work(directory: Path, shard: tuple[int, int]) -> None:
    """--overwrite: drop this shard's parts and manifests, never another running shard's."""
    if shard[1] == 1:
        logger.info("--overwrite: removing %s", directory)
        shutil.rmtree(directory)
        return
    prefix = _part_prefix(shard)
    temps = directory.glob(f".{prefix}-*{files.TEMP_SUFFIX}")
    for path in [*directory.glob(f"{prefix}-*.parquet"), *temps]:
        path.unlink()
    for name in (store.manifest_name(shard), store.MANIFEST):
        (directory / name).unlink(missing_ok=True)


def _part_records(
    directory: Path, prefix: str, written: Mapping[str, dict[str, Any]]
) -> dict[str, dict[str, Any]]:
    """Records of every part of this shard: those just written, and those a killed run left.

    An unsharded run owns every part of its folder (also those of an earlier sharded run).
    """
    ours = re.compile(rf"^{re.escape(prefix)}-" + (r".*" if prefix == "part" else r"\d+\.parquet$"))
    return {
        p.name: written.get(p.name) or parts.part_record(p)
        for p in parts.part_files(directory)
        if ours.match(p.name)
    }


def entry_lock_path(directory: Path, *, shard: tuple[int, int]) -> Path:
    """The lock file of one shard of an entry: beside its folder, which --overwrite removes."""
    return directory.parent / f".{directory.name}.{shard[0]}of{shard[1]}.lock"


@contextlib.contextmanager
def entry_lock(directory: Path, *, shard: tuple[int, int]) -> Iterator[None]:
    """Hold the lock of one cache entry (one shard of it); refuse at once if another holds it."""
    directory.parent.mkdir(parents=True, exist_ok=True)
    lock = FileLock(entry_lock_path(directory, shard=shard), timeout=0)
    try:
        lock.acquire()
    except Timeout:
        how = "" if shard[1] > 1 else " (or give each process its --shard I/N)"
        logger.info("%s is locked by %s", directory, lock.lock_file)
        raise ExtractionError(
            f"another `moee extract` is writing {directory}: wait for it to finish{how}"
        ) from None
    try:
        yield
    finally:
        lock.release()


@dataclass(frozen=True)
class TaskPlan:
    """One (task, prompt) ready to extract: its folder and the texts still missing, tokenized."""

    task: str
    prompt: Prompt
    directory: Path
    manifest_name: str
    texts: list[str]  # every text of the task, deduplicated
    mine: list[str]  # this shard's texts
    todo: list[str]  # this shard's texts not yet in a complete part
    encoded: list[Encoded]  # `todo`, prompted and tokenized, in the same order
    splits: list[str]
    start: float


def plan_task(
    tokenizer: PreTrainedTokenizerBase,
    *,
    task: str,
    texts: Sequence[str],
    prompt: Prompt,
    options: ExtractOptions,
    settings: dict[str, Any],
    model_id: str,
    splits: Sequence[str] = (),
) -> TaskPlan | TaskSummary:
    """Everything before the forward passes: the resume logic, shared by every engine.

    `settings` holds the run's settings (all of `run_metadata`, or the subset known before the
    model loads); a cache entry made with others is refused. Returns a skipped summary when the
    task is already complete for `splits`.
    """
    start = time.perf_counter()
    directory = layout.task_dir(options.cache_dir, model=model_id, prompt_id=prompt.id, task=task)
    manifest_name = store.manifest_name(options.shard)
    if not texts:
        raise ExtractionError(f"{task} has no texts to extract; check its data")
    if not any(t.strip() for t in texts):
        raise ExtractionError(
            f"all {len(texts)} texts of {task} are empty or whitespace: its scores would be "
            "meaningless; check its data"
        )
    if options.overwrite and directory.exists():
        _remove_own_work(directory, options.shard)
    done = store.read_manifest(directory, manifest_name) or store.read_manifest(directory)
    if done is not None:
        check_same_settings(done, settings, where=directory)
        if set(splits) <= set(done.get("splits") or splits):
            return TaskSummary(task, prompt.id, done["rows"], 0, 0.0, directory, skipped=True)
        for name in {manifest_name, store.MANIFEST}:  # grows to more splits: incomplete again
            (directory / name).unlink(missing_ok=True)
    directory.mkdir(parents=True, exist_ok=True)
    files.remove_stale_temps(directory)
    _check_same_run(directory, settings)

    texts = list(dict.fromkeys(texts))
    mine = _select_shard(texts, options.shard)
    have = store.existing_text_ids(directory)
    todo = [t for t in mine if parts.text_id(t) not in have]
    encoded = encode_texts(tokenizer, prompt, todo, max_length=options.max_length)
    empty = [todo[e.index] for e in encoded if not e.input_ids]
    if empty:
        raise ExtractionError(
            f"{task}: {len(empty)} prompted text(s) have no tokens, e.g. {empty[0][:60]!r}; "
            "use a tokenizer that adds a BOS token, or a prompt template"
        )
    return TaskPlan(
        task, prompt, directory, manifest_name, texts, mine, todo, encoded, list(splits), start
    )


def open_writer(plan: TaskPlan, metadata: dict[str, Any], *, options: ExtractOptions) -> PartWriter:
    """The part writer of a planned task; `metadata` (from the loaded model) goes in every part."""
    _check_same_run(plan.directory, metadata)
    metadata = {**metadata, "texts_in_task": len(plan.texts)}  # `moee ls` progress of a first run
    schema = parts.feature_schema(metadata)
    return PartWriter(
        plan.directory, schema, prefix=_part_prefix(options.shard), rows=options.rows_per_shard
    )


def finish_task(
    plan: TaskPlan,
    metadata: dict[str, Any],
    *,
    options: ExtractOptions,
    new_rows: int,
    tokens: int,
    run: dict[str, Any],
    records: Mapping[str, dict[str, Any]] | None = None,
    timing: Mapping[str, Any] | None = None,
) -> TaskSummary:
    """Write the manifest (last: it marks the task complete) once every part is on disk.

    `run` records how the run was made (engine, workers); `records` the parts just written
    (size, rows, SHA-256); parts without one are hashed from disk; `timing` where the time
    went (the batch loop, padded tokens), so a run's speed can be read back from the cache.
    """
    seconds = time.perf_counter() - plan.start
    rows = len(plan.mine)  # every text of this shard is now stored
    manifest = {
        **metadata,
        **run,
        "rows": rows,
        "new_rows": new_rows,
        "tokens": tokens,
        "seconds": round(seconds, 3),
        "truncated": int(sum(e.truncated for e in plan.encoded)),
        "shard": list(options.shard),
        "texts_in_task": len(plan.texts),
        "splits": plan.splits,
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "parts": _part_records(plan.directory, _part_prefix(options.shard), records or {}),
        **({"timing": dict(timing)} if timing else {}),
    }
    store.write_json_atomic(plan.directory / plan.manifest_name, manifest)
    if options.shard[1] > 1:
        _combine_shard_manifests(plan.directory, options.shard[1], manifest)
    return TaskSummary(
        plan.task, plan.prompt.id, rows, new_rows, seconds, plan.directory, tokens=tokens
    )


def _combine_shard_manifests(directory: Path, count: int, last: dict[str, Any]) -> None:
    """When every shard of a task is done, mark the whole task complete."""
    manifests = [
        store.read_manifest(directory, store.manifest_name((i, count))) for i in range(count)
    ]
    done = [m for m in manifests if m is not None]
    if len(done) < count:
        return
    rows = int(np.sum([m["rows"] for m in done]))
    seconds = float(np.sum([m["seconds"] for m in done]))
    records = {name: r for m in done for name, r in m.get("parts", {}).items()}
    store.write_json_atomic(
        directory / store.MANIFEST,
        {**last, "rows": rows, "seconds": seconds, "shard": [0, 1], "shards": count}
        | {"parts": records},
    )
