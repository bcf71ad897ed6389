"""What one extraction run is asked to do (its options, each default stated once) and reports.

Kept free of torch, transformers and pyarrow: the CLI takes its option defaults from here when
it starts, and `run_extract` uses it before the model's libraries are imported (while the
texts are recorded in another process).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from moee_pipeline.cache.layout import cache_root
from moee_pipeline.errors import MoeeError


class ExtractionError(MoeeError, RuntimeError):
    """Extraction cannot go on; the message says why and what to do."""


@dataclass(frozen=True)
class ExtractOptions:
    """How to batch, shard and store one run; the CLI's defaults are these.

    `cache_dir` defaults to the CLI's: $MOEE_CACHE_DIR, else ./cache (read when made).
    """

    cache_dir: Path = field(default_factory=cache_root)
    batch_size: int = 64
    max_batch_tokens: int = 16384
    max_length: int = 512
    rows_per_shard: int = 4096
    shard: tuple[int, int] = (0, 1)
    overwrite: bool = False
    progress: bool = True


@dataclass(frozen=True)
class TaskSummary:
    """What one (task, prompt) extraction did."""

    task: str
    prompt_id: str
    rows: int
    new_rows: int
    seconds: float
    path: Path
    skipped: bool = False
    tokens: int = 0
    extra: dict[str, Any] = field(default_factory=dict)
    #: Rows of this run whose text was cut to --max-length (inside the template).
    truncated: int = 0
    #: Rows copied from another task's entry of the same model and prompt, not extracted.
    copied: int = 0


def option_defaults() -> dict[str, Any]:
    """Each option's default by field name (the CLI's defaults: stated once, here)."""
    return {f.name: f.default for f in fields(ExtractOptions) if f.name != "cache_dir"}


def check_texts(task: str, texts: Sequence[str]) -> None:
    """Refuse a task whose texts cannot give meaningful features (before anything is stored:
    the recorder asks before it writes the task's snapshot, the engines before an entry)."""
    if not texts:
        raise ExtractionError(f"{task} has no texts to extract; check its data")
    if not any(t.strip() for t in texts):
        raise ExtractionError(
            f"all {len(texts)} texts of {task} are empty or whitespace: its scores would be "
            "meaningless; check its data"
        )


def check_max_length(max_length: int, config: Any, *, model: str) -> None:
    """Refuse a --max-length the model has no positions for (its config's
    `max_position_embeddings`): longer texts would run past what it was trained on."""
    positions = getattr(config, "max_position_embeddings", None)
    if isinstance(positions, int) and max_length > positions:
        raise ExtractionError(
            f"--max-length {max_length} is more than the {positions} positions of {model}: "
            f"use --max-length {positions} or less"
        )
