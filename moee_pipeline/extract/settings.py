"""What one extraction run is asked to do (its options, each default stated once) and reports.

Kept free of torch, transformers and pyarrow: the CLI takes its option defaults from here when
it starts, and `run_extract` uses it before the model's libraries are imported (while the
texts are recorded in another process).
"""

from __future__ import annotations

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


def option_defaults() -> dict[str, Any]:
    """Each option's default by field name (the CLI's defaults: stated once, here)."""
    return {f.name: f.default for f in fields(ExtractOptions) if f.name != "cache_dir"}
