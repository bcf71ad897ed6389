"""Which cache entries the extraction of one task makes: one per prompt, or one per side.

Without `--query-prompt`/`--document-prompt` every prompt is one entry holding every text of
the task, as always. With them, a task whose texts have sides (Retrieval, and Reranking, whose
queries and documents mteb encodes alike) gets two entries where the sides' templates differ:
the queries under the query prompt, the documents under the document prompt, each holding only
its side's texts (as mteb's `prompt_type` recorded them, beside the snapshot); a side whose
template is a plain run's finds that run's entry complete and computes nothing. A task without
sides (the other types) is extracted under the `--prompt` value, which the side options do not
change. Torch-free: the collection plans with it before the model loads.
"""

from __future__ import annotations

import logging
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from moee_pipeline.cache import layout, snapshots
from moee_pipeline.extract.settings import ExtractionError
from moee_pipeline.prompts import PROMPTS, Prompt, resolve_prompt
from moee_pipeline.sides import Sides, side_prompts
from moee_pipeline.vocabulary import DOCUMENT, QUERY

logger = logging.getLogger(__name__)

__all__ = [
    "EntryJob",
    "prompt_spec",
    "side_kwargs",
    "task_jobs",
    "task_text_sides",
    "two_templates",
]

#: text -> the sides mteb encodes it as, over a task's recorded splits.
TextSides = Mapping[str, Collection[str]]


@dataclass(frozen=True)
class EntryJob:
    """One entry to make for a task: its prompt and, for one side's entry, which side."""

    prompt: Prompt
    sides: Sides | None = None
    #: Each side's prompt spec, recorded in a side's manifest (the command that completes it).
    side_prompts: Mapping[str, str] | None = None
    text_sides: TextSides | None = None


def side_kwargs(job: EntryJob | None) -> dict[str, Any]:
    """What `entries.plan_task` takes of a job beyond its prompt (nothing for a plain one)."""
    if job is None or job.sides is None:
        return {}
    return {"sides": job.sides, "text_sides": job.text_sides, "side_prompts": job.side_prompts}


def prompt_spec(prompt: Prompt) -> str:
    """What `--prompt` takes to name this prompt again: its name, or a custom template."""
    return prompt.name if PROMPTS.get(prompt.name) == prompt.template else prompt.template


def two_templates(prompts: Sequence[Prompt], query: Prompt | None, document: Prompt | None) -> bool:
    """Whether the sides have different templates (so each is an entry of its own).

    Raises:
        SidesError: side prompts beside several `--prompt` values (one line).
    """
    pair = side_prompts(prompts, query=query, document=document, plain=resolve_prompt("none"))
    return pair is not None and pair.query.id != pair.document.id


def task_text_sides(name: str, splits: Sequence[str], *, cache_dir: Path) -> dict[str, set[str]]:
    """Each recorded text's sides over the splits (empty for a task without sides).

    Raises:
        ExtractionError: a split recorded before the record kept sides.
    """
    out: dict[str, set[str]] = {}
    for split in splits:
        found = snapshots.read_text_sides(name, split, cache_dir=cache_dir)
        if found is None:
            folder = layout.snapshot_dir(cache_dir, name)
            raise ExtractionError(
                f"{name}/{split}: its recorded texts do not say which are queries and which "
                f"documents (recorded by an older moee): remove {folder} and rerun"
            )
        for text, sides in found.items():
            out.setdefault(text, set()).update(sides)
    return out


def task_jobs(
    name: str,
    prompts: Sequence[Prompt],
    *,
    query: Prompt | None,
    document: Prompt | None,
    text_sides: TextSides | None,
) -> list[EntryJob]:
    """The entries of one task; `text_sides` (`task_text_sides`) is needed only where the
    sides' templates differ (without it, or for a task without sides, the one --prompt)."""
    pair = side_prompts(prompts, query=query, document=document, plain=resolve_prompt("none"))
    if pair is None:
        return [EntryJob(p) for p in prompts]
    both = prompts[0] if prompts else resolve_prompt("none")
    q, d = pair.query, pair.document
    if q.id == d.id:
        return [EntryJob(q)]
    if not text_sides or not any(text_sides.values()):
        logger.warning(
            "%s has no queries and documents: --query-prompt/--document-prompt do not apply, "
            "extracted under --prompt %s",
            name,
            both.id,
        )
        return [EntryJob(both)]
    specs: dict[str, str] = {QUERY: prompt_spec(q), DOCUMENT: prompt_spec(d)}
    return [
        EntryJob(q, frozenset({QUERY}), specs, text_sides),
        EntryJob(d, frozenset({DOCUMENT}), specs, text_sides),
    ]
