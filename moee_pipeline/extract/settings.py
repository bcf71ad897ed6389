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
from moee_pipeline.vocabulary import HS_STORES, HsStore, StoreDtype


class ExtractionError(MoeeError, RuntimeError):
    """Extraction cannot go on; the message says why and what to do."""


@dataclass(frozen=True)
class ExtractOptions:
    """How to batch, shard and store one run; the CLI's defaults are these.

    `cache_dir` defaults to the CLI's: $MOEE_CACHE_DIR, else ./cache (read when made).
    `store_dtype` is the type the vectors are written in (read back as float32); it changes the
    features, so an entry made with another is not reused (README, "Compact storage"). None:
    DEFAULT_STORE_DTYPE for a new entry (or one --overwrite replaces), the entry's own for one
    a run resumes or extends, so caches made before the option go on as they were.
    """

    cache_dir: Path = field(default_factory=cache_root)
    batch_size: int = 64
    max_batch_tokens: int = 16384
    max_length: int = 512
    rows_per_shard: int = 4096
    shard: tuple[int, int] = (0, 1)
    overwrite: bool = False
    #: Which hidden states to store: the last layer's (hs_last, hs_mean), or also every decoder
    #: layer's (hs_layers_last, hs_layers_mean).
    hs_layers: HsStore = "last"
    #: Extend a complete entry extracted with `hs_layers="last"` to "all": the model runs over
    #: its texts again for the new columns, every stored value is kept as it is.
    extend: bool = False
    store_dtype: StoreDtype | None = None
    progress: bool = True

    def __post_init__(self) -> None:
        if self.hs_layers not in HS_STORES:
            raise ExtractionError(f"unknown --hs-layers {self.hs_layers!r}: use last or all")
        if self.extend and self.hs_layers != "all":
            raise ExtractionError("--extend adds every layer's hidden states: add --hs-layers all")


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


#: What new entries are stored as: half of float32's bytes or less, float32's range, and score
#: changes below those of computing in bfloat16 (README, "Compact storage").
DEFAULT_STORE_DTYPE: StoreDtype = "bfloat16"


def storage_settings(options: ExtractOptions) -> dict[str, Any]:
    """What a run's options ask of the settings every part and manifest record (a store dtype
    left to the entry asks nothing: see `ExtractOptions`)."""
    return {} if options.store_dtype is None else {"store_dtype": options.store_dtype}


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
