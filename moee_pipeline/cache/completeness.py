"""When a cache entry is complete, and what completes one.

A manifest marks an entry complete, but its parts must also hold every text its task's
evaluation encodes (as recorded beside the task's snapshot): a part removed together with its
manifest record leaves a manifest that adds up and an entry that lacks texts. `moee ls`, `moee
verify` and a rerun of `moee extract` ask the same question here, and verify's line names the
`moee extract` command that adds exactly the missing texts. An entry of one side of a
retrieval task (`sides.py`: the queries under their own template, or the documents) is judged
against that side's recorded texts only.
"""

from __future__ import annotations

import shlex
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from moee_pipeline.cache import layout
from moee_pipeline.cache.parts import text_id
from moee_pipeline.cache.snapshots import (
    read_encoded_texts,
    read_snapshot_manifest,
    read_text_sides,
)
from moee_pipeline.cache.store import (
    MANIFEST,
    MANIFEST_GLOB,
    CacheError,
    existing_text_ids,
    read_manifest,
)
from moee_pipeline.sides import Sides, held_sides, texts_of_sides


def recorded_text_ids(
    name: str,
    splits: Sequence[str] | None = None,
    *,
    cache_dir: Path,
    sides: Sides | None = None,
) -> set[str] | None:
    """The ids of every text the evaluation of `splits` (None: the snapshot's own eval splits)
    encodes, as recorded beside the snapshot (only those of `sides`, if given); None when the
    snapshot or a split's list (or its sides) is not there. What an entry of the task must hold
    to be complete."""
    manifest = read_snapshot_manifest(layout.snapshot_dir(cache_dir, name))
    if manifest is None or manifest.get("task") != name:
        return None
    chosen = list(splits or manifest.get("eval_splits") or [])
    ids: set[str] = set()
    for split in chosen:
        texts = read_encoded_texts(name, split, cache_dir=cache_dir)
        if texts is None:
            return None
        if sides is not None:
            text_sides = read_text_sides(name, split, cache_dir=cache_dir)
            if text_sides is None:
                return None
            texts = texts_of_sides(texts, text_sides, sides)
        ids.update(text_id(t) for t in texts)
    return ids or None


def lacking(directory: Path, texts: Sequence[str]) -> list[str]:
    """The texts an entry's parts do not hold: what a rerun must extract (a complete entry
    lacks some when a part was removed together with its manifest record)."""
    have = existing_text_ids(directory)
    return [t for t in texts if text_id(t) not in have]


def missing_from(
    directory: Path, manifest: Mapping[str, Any], *, cache_dir: Path, stored: set[str] | int
) -> tuple[int, int] | None:
    """(texts missing, texts of the task) when a complete entry lacks texts its task has, else
    None: the one completeness test of `moee ls`, `moee verify` and extraction's rerun.

    The task's texts are those recorded beside its snapshot for the manifest's splits, else
    the count the manifest recorded; an entry of one side is judged by that side's texts;
    `stored` is the entry's text ids, or (`moee ls`, which
    reads footers only) how many rows its parts hold.
    """
    task = layout.EntryKey.from_path(directory).task
    recorded = recorded_text_ids(
        task, manifest.get("splits") or None, cache_dir=cache_dir, sides=held_sides(manifest)
    )
    if recorded is not None:
        total = len(recorded)
        lost = len(recorded - stored) if isinstance(stored, set) else total - stored
    else:
        total = int(manifest.get("texts_in_task") or 0)
        lost = total - (len(stored) if isinstance(stored, set) else stored)
    return (lost, total) if lost > 0 else None


def cached_template(cache_dir: Path, prompt_id: str) -> str | None:
    """The template of a custom prompt the cache holds entries of, by its id (`custom-1a2b3c4d`,
    as extract prints it and scoring names it), so `moee extract --prompt <id>` can extend or
    complete them; None when no entry of that id records one."""
    pattern = f"model=*/prompt={prompt_id}/task=*"
    for directory in sorted(layout.features_root(cache_dir).glob(pattern)):
        names = [MANIFEST, *(p.name for p in sorted(directory.glob(MANIFEST_GLOB)))]
        for name in dict.fromkeys(names):
            try:
                manifest = read_manifest(directory, name)
            except CacheError:
                continue
            if manifest and manifest.get("prompt_template"):
                return str(manifest["prompt_template"])
    return None


def extract_command(manifest: Mapping[str, Any], directory: Path) -> str:
    """The `moee extract` command that completes an entry, as its manifest names the model,
    prompt (a custom one by its template), task and splits; an entry of one side names the
    two sides' prompts its run was given (`side_prompts`)."""
    key = layout.EntryKey.from_path(directory)
    model = str(manifest.get("model") or key.model_slug)
    named = manifest.get("prompt") not in {None, "custom"}
    prompt = str(manifest.get("prompt") if named else manifest.get("prompt_template"))
    pair = manifest.get("side_prompts") if held_sides(manifest) is not None else None
    if isinstance(pair, Mapping) and pair.get("query") and pair.get("document"):
        chosen = ["--query-prompt", str(pair["query"]), "--document-prompt", str(pair["document"])]
    else:
        chosen = ["--prompt", prompt]
    words = ["moee", "extract", "--model", model, *chosen, "--tasks", key.task]
    if manifest.get("splits"):
        words += ["--splits", ",".join(manifest["splits"])]
    return shlex.join(words)
