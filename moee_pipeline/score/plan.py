"""Which (task, prompt) units a run scores, and the check that each was extracted.

Both happen on the driver before any unit is scored, whichever runner scores them, so a
missing extraction is one line before any evaluation or worker starts.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from moee_pipeline.cache import layout, store
from moee_pipeline.cache.snapshots import read_snapshot_manifest, read_text_sides
from moee_pipeline.prompts import prompt_id
from moee_pipeline.score.config import ScoreConfig
from moee_pipeline.sides import pair_label, parse_label

__all__ = ["UnitKey", "check_extracted", "entry_prompts", "plan_units", "resolve_tasks"]

#: One unit of a run: (task name, prompt id), or for a retrieval task whose sides have their
#: own templates, (task name, `sides.pair_label` of the two ids).
UnitKey = tuple[str, str]


def resolve_tasks(config: ScoreConfig, prompt_ids: Sequence[str]) -> list[str]:
    """Explicit --tasks, else every complete cached task of the model and prompts (by type)."""
    from moee_pipeline.tasks import select_tasks, task_type
    from moee_pipeline.tasks.registry import check_task_types

    if config.tasks:
        return select_tasks(tasks=config.tasks, task_types=config.task_types)
    check_task_types(config.task_types)
    entries = [
        e
        for e in store.list_cached(config.cache_dir, model=config.model)
        if e.prompt_id in prompt_ids
    ]
    damaged = [e.problem for e in entries if e.problem]
    if damaged:  # never a silently partial evaluation
        raise store.CacheError(damaged[0])
    cached = [e.task for e in entries if e.complete]
    names = list(dict.fromkeys(cached))
    if config.task_types:
        names = [n for n in names if task_type(n) in config.task_types]
    if not names:
        raise store.CacheError(
            f"no complete cached tasks for model={layout.model_slug(config.model)} "
            f"prompt={','.join(prompt_ids)} in {config.cache_dir}: run `moee extract` first"
        )
    return names


def plan_units(config: ScoreConfig) -> list[UnitKey]:
    """Every (task, prompt) of the run in the serial order: task by task, prompts within; a
    task with queries and documents (Retrieval, Reranking) under two templates (`config.sides`)
    is one unit of both entries."""
    prompts = list(dict.fromkeys(prompt_id(p) for p in config.prompts))
    pair = config.sides
    if pair is None:
        return [(task, prompt) for task in resolve_tasks(config, prompts) for prompt in prompts]
    label = pair_label(pair.query, pair.document)
    every = list(dict.fromkeys([*prompts, pair.query, pair.document]))
    return [
        (task, label if has_sides(task, cache_dir=config.cache_dir) else prompt)
        for task in resolve_tasks(config, every)
        for prompt in prompts
    ]


def has_sides(task: str, *, cache_dir: Path) -> bool:
    """Whether the texts recorded for the task's evaluation have sides (queries, documents):
    what extraction split into one entry per side (extract/jobs.py), read from the same record."""
    manifest = read_snapshot_manifest(layout.snapshot_dir(cache_dir, task)) or {}
    for split in manifest.get("eval_splits") or []:
        recorded = read_text_sides(task, split, cache_dir=cache_dir)
        if recorded and any(recorded.values()):
            return True
    return False


def entry_prompts(prompt: str) -> list[str]:
    """The prompt ids of the entries a unit reads: its own, or a pair's two."""
    pair = parse_label(prompt)
    return [prompt] if pair is None else [pair.query, pair.document]


def check_extracted(config: ScoreConfig, units: Sequence[UnitKey]) -> None:
    """Fail before any unit is scored when one was never extracted (or is incomplete).

    Reads manifests only; a unit without one raises the error `read_features` gives, which
    names the extract command to run.
    """
    for name, label in units:
        for prompt in entry_prompts(label):
            where = layout.task_dir(
                config.cache_dir, model=config.model, prompt_id=prompt, task=name
            )
            if store.read_manifest(where) is None:
                store.read_features(
                    config.cache_dir, model=config.model, prompt_id=prompt, task=name
                )
