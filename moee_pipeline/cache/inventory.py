"""`moee ls`: what the feature cache holds, how big it is and how far each extraction got.

A task folder is complete when `_manifest.json` exists and its parts hold every text its task
records (else it is incomplete, as `moee verify` and a rerun of `moee extract` find it too).
Otherwise it is either sharded (some `_manifest.<i>of<n>.json` exist: those shards finished) or
partial (an interrupted run: parts but no manifest). Progress counts the rows in the part files
(from Parquet footers, no data read) against the number of texts the task has, which manifests
record as `texts_in_task`; an interrupted run has no manifest of its own, so the count is
borrowed from any other entry of the same task (the task's texts do not depend on the model or
the prompt).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from moee_pipeline.cache import completeness, layout, parts, store
from moee_pipeline.sides import held_sides
from moee_pipeline.units import format_bytes

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class InventoryRow:
    """One (model, prompt, task) entry of the cache, as `moee ls` shows it."""

    model: str
    model_slug: str
    prompt: str
    task: str
    status: str
    rows: int
    texts_in_task: int | None
    shards_done: int | None
    shards: int | None
    n_moe_layers: int | None
    n_experts: int | None
    hidden_size: int | None
    size_bytes: int
    made: str | None
    path: str
    #: The sides of a retrieval task the entry holds (its own template per side), else None.
    sides: tuple[str, ...] | None = None

    @property
    def progress(self) -> float | None:
        """Rows stored / texts in the task, or None when the task's size is unknown."""
        if self.status == "complete":
            return 1.0
        return self.rows / self.texts_in_task if self.texts_in_task else None

    def as_dict(self) -> dict[str, Any]:
        """A JSON-ready dict including the derived progress."""
        return {**asdict(self), "progress": self.progress}


def _rows_in_parts(paths: Sequence[Path]) -> tuple[int, list[Path]]:
    """Rows in the readable parts, and the parts whose footer cannot be read (damaged)."""
    rows, broken = 0, []
    for part in paths:
        try:
            rows += pq.read_metadata(part).num_rows
        except (OSError, pa.ArrowException):
            broken.append(part)
    return rows, broken


def _readable_manifest(directory: Path, name: str) -> dict[str, Any] | None:
    """A manifest, or None when it is damaged (its entry's status says so)."""
    try:
        return store.read_manifest(directory, name)
    except store.CacheError:
        return None


def _shard_manifests(directory: Path) -> tuple[list[dict[str, Any]], int | None]:
    """Finished shard manifests of a folder and the shard count they declare."""
    found: list[dict[str, Any]] = []
    count: int | None = None
    for path in sorted(directory.glob(store.MANIFEST_GLOB)):
        shard = store.manifest_shard(path.name)
        manifest = _readable_manifest(directory, path.name) if shard else None
        if shard and manifest is not None:
            found.append(manifest)
            count = shard[1]
    return found, count


def _iso_mtime(path: Path) -> str:
    return datetime.fromtimestamp(path.stat().st_mtime).astimezone().isoformat(timespec="seconds")


def _entry_row(
    entry: store.CacheEntry, texts_by_task: dict[str, int], cache_dir: Path
) -> InventoryRow:
    directory = entry.path
    found = parts.part_files(directory)
    rows, broken = _rows_in_parts(found)
    shard_done, shard_count = _shard_manifests(directory)
    manifests = [m for m in [entry.manifest, *shard_done] if m]
    meta: dict[str, Any] = dict(manifests[0]) if manifests else {}
    readable = [p for p in found if p not in broken]
    if not meta and readable:
        meta = parts.part_metadata(readable[0])
    if broken:
        names = ", ".join(p.name for p in broken)
        status = f"damaged: unreadable {names}; run `moee verify --repair`"
    elif entry.complete:
        status = "complete"
        if entry.manifest and entry.manifest.get("rows") != rows:
            status = f"inconsistent: manifest says {entry.manifest.get('rows')} rows"
        elif entry.manifest:
            lacking = completeness.missing_from(
                directory, entry.manifest, cache_dir=cache_dir, stored=rows
            )
            if lacking is not None:
                meta["texts_in_task"] = lacking[1]
                status = (
                    f"incomplete: {lacking[0]} of {lacking[1]} texts missing; "
                    "rerun `moee extract` for it"
                )
    elif entry.problem:
        status = f"damaged: {entry.problem}"
    else:
        status = "sharded" if shard_done else "partial"
    times = [m["created"] for m in manifests if m.get("created")]
    made = max(times) if times else None
    if not entry.complete and found:
        made = _iso_mtime(max(found, key=lambda p: p.stat().st_mtime))
    size = sum(p.stat().st_size for p in directory.iterdir() if p.is_file())
    texts = meta.get("texts_in_task") or texts_by_task.get(entry.task)
    return InventoryRow(
        model=str(meta.get("model") or entry.model_slug),
        model_slug=entry.model_slug,
        prompt=entry.prompt_id,
        task=entry.task,
        status=status,
        rows=rows,
        texts_in_task=int(texts) if texts else None,
        shards_done=len(shard_done) if shard_done else None,
        shards=shard_count,
        n_moe_layers=meta.get("n_moe_layers"),
        n_experts=meta.get("n_experts"),
        hidden_size=meta.get("hidden_size"),
        size_bytes=size,
        made=made,
        path=str(directory),
        sides=tuple(sorted(held)) if (held := held_sides(meta)) is not None else None,
    )


def inventory(*, cache_dir: Path, model: str | None = None) -> list[InventoryRow]:
    """One row per cached (model, prompt, task), sorted as the cache is laid out."""
    entries = store.list_cached(Path(cache_dir), model=model)
    texts_by_task: dict[str, int] = {}
    for key, directory in layout.iter_entries(Path(cache_dir)):
        for path in sorted(directory.glob(store.MANIFEST_GLOB)):
            manifest = _readable_manifest(directory, path.name) or {}
            if manifest.get("texts_in_task"):
                texts_by_task.setdefault(key.task, manifest["texts_in_task"])
    return [_entry_row(entry, texts_by_task, Path(cache_dir)) for entry in entries]


def _state(row: InventoryRow) -> str:
    progress = "?" if row.progress is None else f"{100 * row.progress:.0f}%"
    total = row.texts_in_task if row.texts_in_task else "?"
    if row.status == "complete":
        return "complete"
    if row.status.startswith("incomplete"):
        return f"{row.status} ({row.rows}/{total}, {progress})"
    if row.status == "sharded":
        return (
            f"sharded: {row.shards_done}/{row.shards} shards done, {row.rows}/{total} ({progress})"
        )
    if row.status == "partial":
        return f"partial: {row.rows}/{total} ({progress}), no manifest"
    return row.status


def _state_of_sides(row: InventoryRow) -> str:
    """The state, saying which side an entry of one side holds (`sides.py`)."""
    state = _state(row)
    return state if row.sides is None else f"{state} ({', '.join(row.sides)} side)"


def format_inventory(rows: Sequence[InventoryRow]) -> str:
    """A plain-text table for the terminal."""
    headers: tuple[str, ...] = ("model", "prompt", "task", "rows", "RW (layers x experts)")
    headers += ("hidden", "size", "state", "made")
    table: list[tuple[str, ...]] = [headers]
    for row in rows:
        rw = f"{row.n_moe_layers} x {row.n_experts}" if row.n_moe_layers else "?"
        table.append(
            (
                row.model_slug,
                row.prompt,
                row.task,
                str(row.rows),
                rw,
                str(row.hidden_size or "?"),
                format_bytes(row.size_bytes),
                _state_of_sides(row),
                row.made or "?",
            )
        )
    widths = [max(len(line[i]) for line in table) for i in range(len(headers))]
    lines = [
        "  ".join(cell.ljust(w) for cell, w in zip(line, widths, strict=True)).rstrip()
        for line in table
    ]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def inventory_json(rows: Sequence[InventoryRow]) -> str:
    """The inventory as a JSON list, for scripts."""
    return json.dumps([row.as_dict() for row in rows], indent=2)
