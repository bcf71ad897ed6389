"""One cache entry, the same for both engines: its lock, what is left to extract, its writer, its
manifest.

An entry is one (model, prompt, task) folder. `plan_task` finds the texts not yet in a complete
part (a rerun, another shard's share, or texts of the task an entry lacks although its manifest
says complete) and tokenizes them; `open_writer` gives the part writer; `finish_task` writes
the manifest last, which marks the entry complete. Sharded runs (`--shard I/N`) each own their
parts and manifest; the last to finish combines them. `--overwrite` builds the new entry (or
shard) under staging/ and swaps it in at the end (cache/staging.py): the old one stays
readable until then, whatever stops the run.

Nothing is created before a run is known to go ahead (every refusal comes first), and a run
that stored nothing leaves neither folder nor lock behind.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import re
import time
from collections.abc import Collection, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from filelock import FileLock, Timeout
from transformers import PreTrainedTokenizerBase

from moee_pipeline.cache import files, layout, parts, staging, store
from moee_pipeline.extract.batching import Encoded, encode_texts
from moee_pipeline.extract.hooks import PooledBatch
from moee_pipeline.extract.reuse import check_hs_room, check_same_settings, extends_hs
from moee_pipeline.extract.runinfo import shard_of
from moee_pipeline.extract.settings import (
    DEFAULT_STORE_DTYPE,
    ExtractionError,
    ExtractOptions,
    TaskSummary,
    check_texts,
)
from moee_pipeline.extract.shared import copy_shared_rows, shared_sources
from moee_pipeline.extract.writer import PartWriter
from moee_pipeline.prompts import Prompt
from moee_pipeline.sides import Sides, held_sides, merge_sides, texts_of_sides
from moee_pipeline.vocabulary import StoreDtype

logger = logging.getLogger(__name__)


def _select_shard(texts: Sequence[str], shard: tuple[int, int]) -> list[str]:
    index, count = shard
    return [t for t in texts if shard_of(parts.text_id(t), count) == index]


def _check_same_run(
    directory: Path, metadata: dict[str, Any], *, besides: tuple[int, int] | None = None
) -> None:
    """Refuse to mix parts made with other settings into one task (`besides`: the shard whose
    parts an overwrite replaces, which need not match)."""
    skip = parts.part_prefix(besides) + "-" if besides is not None else None
    found = [p for p in parts.part_files(directory) if skip is None or not p.name.startswith(skip)]
    if found:
        check_same_settings(parts.part_metadata(found[0]), metadata, where=directory)


def _store_dtype(
    final: Path, options: ExtractOptions, done: Mapping[str, Any] | None
) -> StoreDtype:
    """What a run stores its vectors as: the dtype asked for; else the entry's own where the
    run keeps any of it (a resume, an extension, the other shards of an overwritten one), so
    an entry made before --store-dtype existed goes on in float32; else the default."""
    if options.store_dtype is not None:
        return options.store_dtype
    if done is not None:
        return parts.store_dtype(done)
    replaced = parts.part_prefix(options.shard) + "-" if options.overwrite else None
    kept = [
        p for p in parts.part_files(final) if replaced is None or not p.name.startswith(replaced)
    ]
    return parts.store_dtype(parts.part_metadata(kept[0])) if kept else DEFAULT_STORE_DTYPE


def _part_records_of(directory: Path, prefix: str) -> list[str]:
    """The names of this shard's parts in a folder.

    An unsharded run owns every part of its folder (also those of an earlier sharded run).
    """
    ours = re.compile(rf"^{re.escape(prefix)}-" + (r".*" if prefix == "part" else r"\d+\.parquet$"))
    return [p.name for p in parts.part_files(directory) if ours.match(p.name)]


def _part_records(
    directory: Path, prefix: str, known: Mapping[str, dict[str, Any] | None]
) -> dict[str, dict[str, Any]]:
    """Records of every part of this shard: those just written or taken along (`known`), and
    those a killed run left (hashed from disk)."""
    return {
        name: known.get(name) or parts.part_record(directory / name)
        for name in _part_records_of(directory, prefix)
    }


def _next_part(directories: Sequence[Path], prefix: str) -> int:
    """The first part number after every `prefix-NNNNN` part in `directories`."""
    pattern = re.compile(rf"^{re.escape(prefix)}-(\d+)\.parquet$")
    numbers = [
        int(m.group(1))
        for d in directories
        for p in parts.part_files(d)
        if (m := pattern.match(p.name))
    ]
    return max(numbers, default=-1) + 1


def entry_lock_path(directory: Path, *, shard: tuple[int, int]) -> Path:
    """The lock file of one shard of an entry: beside its folder, which --overwrite swaps."""
    return layout.entry_lock_path(directory, shard=shard)


@contextlib.contextmanager
def entry_lock(directory: Path, *, shard: tuple[int, int]) -> Iterator[None]:
    """Hold the lock of one cache entry (one shard of it); refuse at once if another holds it.

    A run that leaves the entry without a file (refused, or stopped before its first part)
    removes the folder, the lock and the empty folders above them on its way out.
    """
    path = entry_lock_path(directory, shard=shard)
    lock = FileLock(path, timeout=0)
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
        try:
            staging.drop_if_empty(directory, path)
        finally:
            lock.release()


@dataclass(frozen=True)
class TaskPlan:
    """One (task, prompt) ready to extract: its folder and the texts still missing, tokenized.

    `directory` is where the parts go: the entry's folder (`final`), or the staged build that
    replaces it at the end: with --overwrite, or when a complete entry is extended (more
    splits, missing texts), which then starts from links to the entry's parts (`seeded`).
    """

    task: str
    prompt: Prompt
    directory: Path
    final: Path
    manifest_name: str
    texts: list[str]  # every text the entry holds (of its sides), deduplicated
    mine: list[str]  # this shard's texts
    todo: list[str]  # this shard's texts not yet in a complete part
    encoded: list[Encoded]  # `todo`, prompted and tokenized, in the same order
    splits: list[str]
    start: float
    first_part: int = 0  # the number of the first part this run writes
    #: Parts of the complete entry a staged extension took along, with their manifest records.
    seeded: Mapping[str, dict[str, Any] | None] = field(default_factory=dict)
    #: What an entry extended to every layer's HS stored (`--extend`): its rows keep these.
    kept: store.Features | None = None
    kept_rows: Mapping[str, int] = field(default_factory=dict)  # text id -> row of `kept`
    #: The sides of a retrieval task the entry holds once done (None: every text), and the
    #: two sides' prompt specs of the run that made it one side's entry.
    sides: Sides | None = None
    side_prompts: Mapping[str, str] | None = None
    #: Rows copied from other tasks' entries of the same model and prompt (extract/shared.py).
    copied: int = 0
    #: What the parts store their vectors as (`_store_dtype`).
    store_dtype: StoreDtype = DEFAULT_STORE_DTYPE

    @property
    def staged(self) -> bool:
        """Whether the run builds a replacement beside the entry (--overwrite, an extension)."""
        return self.directory != self.final


def _held_manifest(final: Path, name: str, *, overwrite: bool) -> dict[str, Any] | None:
    """The entry's manifest (this shard's, else the whole one); one an --overwrite replaces may
    be unreadable (it is rebuilt), and then only its sides are unknown."""
    try:
        return store.read_manifest(final, name) or store.read_manifest(final)
    except store.CacheError:
        if not overwrite:
            raise
        return None


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
    sides: Sides | None = None,
    text_sides: Mapping[str, Collection[str]] | None = None,
    side_prompts: Mapping[str, str] | None = None,
) -> TaskPlan | TaskSummary:
    """Everything before the forward passes: the resume logic, shared by every engine.

    `settings` holds the run's settings (all of `run_metadata`, or the subset known before the
    model loads); a cache entry made with others is refused. Returns a skipped summary when the
    task is already complete for `splits` and holds every one of `texts`. Called under the
    entry's lock; every refusal comes before anything is written or removed.

    `sides` asks for one side of a retrieval task only (its own template: `sides.py`), the
    texts `text_sides` records as that side; a complete entry holding other sides (or all) is
    extended to hold both, never narrowed, so one entry serves every run of its template.
    """
    start = time.perf_counter()
    key = layout.EntryKey.of(model=model_id, prompt_id=prompt.id, task=task)
    final = key.path(options.cache_dir)
    shard = options.shard
    manifest_name = store.manifest_name(shard)
    check_texts(task, texts)
    staging.recover(options.cache_dir, key, held=shard)  # what a killed overwrite left
    every = list(dict.fromkeys(texts))  # every text of the task
    if sides is not None and text_sides is None:
        raise ValueError("an entry of one side needs each text's recorded sides")
    done = _held_manifest(final, manifest_name, overwrite=options.overwrite)
    # an entry keeps the sides it held (an --overwrite rebuilds them all): never narrowed
    target = sides if done is None else merge_sides(held_sides(done), sides)
    if options.overwrite:
        done = None
    dtype = _store_dtype(final, options, done)
    settings = {**settings, "store_dtype": dtype}
    texts = texts_of_sides(every, text_sides or {}, target)
    if target is not None:
        check_texts(f"{task} ({', '.join(sorted(target))} side)", texts)
    mine = _select_shard(texts, shard)
    prefix = parts.part_prefix(shard)
    staged = options.overwrite  # build beside the entry and swap it in at the end
    seed: dict[str, Any] = {}  # parts of a complete entry a staged extension starts from
    have: set[str] = set()
    if options.overwrite and shard[1] > 1:  # the other shards' parts stay: of these settings
        _check_same_run(final, settings, besides=shard)
    kept: store.Features | None = None
    kept_rows: dict[str, int] = {}
    if not options.overwrite:
        _check_same_run(final, settings)
        have = store.existing_text_ids(final)
        found = parts.part_files(final)
        if done is None and found:  # resuming: the parts' HS columns must be the run's
            started = parts.part_metadata(found[0])
            extends_hs(started, options, where=final, complete=False)
            check_hs_room(started, options, where=final)
        extend = False
        if done is not None:
            check_same_settings(done, settings, where=final)
            extend = extends_hs(done, options, where=final, complete=True)
            lacking = sum(parts.text_id(t) not in have for t in mine)
            same_sides = target == held_sides(done)
            done_before = set(splits) <= set(done.get("splits") or splits) and not lacking
            if done_before and not extend and same_sides:
                if shard[1] > 1 and store.read_manifest(final) is None:
                    store.combine_shards(final, shard[1], done)  # a swap stopped before it
                return TaskSummary(task, prompt.id, done["rows"], 0, 0.0, final, skipped=True)
            check_hs_room(done, options, where=final)
            if lacking:
                logger.warning("%s lacks %d of its texts: extracting them", final, lacking)
            # more splits, missing texts, more HS: extended beside, readable meanwhile
            staged, records = True, done.get("parts") or {}
            ours = _part_records_of(final, prefix)
            seed = {} if extend else {name: records.get(name) for name in ours}
        gone = have - {parts.text_id(t) for t in every}
        if gone:
            raise ExtractionError(
                f"{final} holds {len(gone)} text(s) that {task} no longer has (its data "
                "changed): rerun with --overwrite"
            )
        if extend:  # every text runs again for the new columns; the stored values stay
            columns = parts.vector_columns(done or {})
            kept = store.read_features(
                options.cache_dir, model=model_id, prompt_id=prompt.id, task=task, columns=columns
            )
            kept_rows = {tid: row for row, tid in enumerate(kept.text_ids)}
            have = set()
    todo = [t for t in mine if parts.text_id(t) not in have]
    # an extension keeps its stored values bit for bit: nothing is taken from other entries
    wanted = {parts.text_id(t) for t in todo} if kept is None else set()
    shared = shared_sources(options.cache_dir, key, settings, wanted)
    borrowed = set().union(*(ids for _, ids in shared))
    todo = [t for t in todo if parts.text_id(t) not in borrowed]
    encoded = encode_texts(tokenizer, prompt, todo, max_length=options.max_length)
    empty = [todo[e.index] for e in encoded if not e.input_ids]
    if empty:
        raise ExtractionError(
            f"{task}: {len(empty)} prompted text(s) have no tokens, e.g. {empty[0][:60]!r}; "
            "use a tokenizer that adds a BOS token, or a prompt template"
        )
    # the run goes ahead: only now is anything created
    directory = staging.staged_dir(options.cache_dir, key, shard) if staged else final
    directory.mkdir(parents=True, exist_ok=True)
    files.remove_stale_temps(directory)
    staging.link_parts(final, directory, list(seed))
    # a staged build continues the entry's numbering; an extension replaces every part
    first = _next_part([final, directory], prefix) if staged and kept is None else 0
    copied = 0
    if shared:  # after every part this entry has: a resumed run keeps its own numbering
        copied, first = copy_shared_rows(
            shared,
            directory,
            task=task,
            texts_in_task=len(texts),
            prefix=prefix,
            first=max(first, _next_part([directory], prefix)),
            rows_per_part=options.rows_per_shard,
        )
    return TaskPlan(
        task,
        prompt,
        directory,
        final,
        manifest_name,
        texts,
        mine,
        todo,
        encoded,
        list(splits),
        start,
        first_part=first,
        seeded=seed,
        kept=kept,
        kept_rows=kept_rows,
        copied=copied,
        store_dtype=dtype,
        sides=target,
        side_prompts=side_prompts if target is not None else None,
    )


def keep_stored(plan: TaskPlan, texts: Sequence[str], pooled: PooledBatch) -> PooledBatch:
    """A batch whose texts an extended entry stored keeps their stored values (bit for bit):
    only the columns the entry lacked come from this run's forward pass."""
    if plan.kept is None:
        return pooled
    rows = np.asarray([plan.kept_rows.get(parts.text_id(t), -1) for t in texts], dtype=np.int64)
    stored = rows >= 0
    if not stored.any():
        return pooled
    arrays = pooled.arrays()
    for name, values in plan.kept.arrays.items():
        merged = arrays[name].copy()
        merged[stored] = values[rows[stored]]
        arrays[name] = merged
    return dataclasses.replace(pooled, **arrays)


def abandon(plan: TaskPlan) -> None:
    """A run that stops before its manifest: a staged build is thrown away (the entry it would
    replace is untouched); parts written in place stay, for the next run to resume from."""
    if plan.staged:
        staging.discard(plan.directory)


def open_writer(plan: TaskPlan, metadata: dict[str, Any], *, options: ExtractOptions) -> PartWriter:
    """The part writer of a planned task; `metadata` (from the loaded model) goes in every part."""
    metadata = {**metadata, "store_dtype": plan.store_dtype}
    if plan.staged:  # the other shards' parts, which stay beside the new ones
        _check_same_run(plan.final, metadata, besides=options.shard)
    _check_same_run(plan.directory, metadata)
    metadata = {**metadata, "texts_in_task": len(plan.texts)}  # `moee ls` progress of a first run
    schema = parts.feature_schema(metadata)
    return PartWriter(
        plan.directory,
        schema,
        prefix=parts.part_prefix(options.shard),
        rows=options.rows_per_shard,
        first=plan.first_part,
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
    """Write the manifest (last: it marks the task complete) once every part is on disk, and
    swap a staged build into the entry's place.

    `run` records how the run was made (engine, workers); `records` the parts just written
    (size, rows, SHA-256); parts without one are hashed from disk; `timing` where the time
    went (the batch loop, padded tokens), so a run's speed can be read back from the cache.
    """
    seconds = time.perf_counter() - plan.start
    rows = len(plan.mine)  # every text of this shard is now stored
    manifest = {
        **metadata,
        "store_dtype": plan.store_dtype,
        **run,
        "rows": rows,
        "new_rows": new_rows,
        "tokens": tokens,
        "seconds": round(seconds, 3),
        "truncated": int(sum(e.truncated for e in plan.encoded)),
        "copied_rows": plan.copied,
        "shard": list(options.shard),
        "texts_in_task": len(plan.texts),
        "splits": plan.splits,
        **({"sides": sorted(plan.sides)} if plan.sides is not None else {}),
        **({"side_prompts": dict(plan.side_prompts)} if plan.side_prompts else {}),
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "parts": _part_records(
            plan.directory, parts.part_prefix(options.shard), {**plan.seeded, **(records or {})}
        ),
        **({"timing": dict(timing)} if timing else {}),
    }
    store.write_json_atomic(plan.directory / plan.manifest_name, manifest)  # the commit point
    if plan.staged:
        staging.swap_in(plan.directory, plan.final, shard=options.shard)
    elif options.shard[1] > 1:
        store.combine_shards(plan.directory, options.shard[1], manifest)
    return TaskSummary(
        plan.task,
        plan.prompt.id,
        rows,
        new_rows,
        seconds,
        plan.final,
        tokens=tokens,
        truncated=manifest["truncated"],
        copied=plan.copied,
    )
