"""What one extraction run is asked to do and reports, and when a cache entry can be reused.

Kept free of torch and transformers: the CLI and `run_extract` use it before the model's
libraries are imported (while the texts are recorded in another process).
"""

from __future__ import annotations

import reprlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from moee_pipeline.cache import store
from moee_pipeline.errors import MoeeError
from moee_pipeline.models.spec import ModelSpec
from moee_pipeline.prompts import Prompt


class ExtractionError(MoeeError, RuntimeError):
    """Extraction cannot go on; the message says why and what to do."""


@dataclass(frozen=True)
class ExtractOptions:
    """How to batch, shard and store one run."""

    cache_dir: Path
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


def _same(key: str, old: Any, new: Any) -> bool:
    """Equal settings; a local model given by another path to the same folder is the same."""
    if old == new:
        return True
    if key == "model" and old and Path(old).is_dir() and Path(new).is_dir():
        return Path(old).resolve() == Path(new).resolve()
    return False


def check_same_settings(old: dict[str, Any], new: dict[str, Any], *, where: Path) -> None:
    """Refuse to reuse or extend a cache entry made with other settings (or another model)."""
    diff = {
        k: (old.get(k), new[k])
        for k in store.FEATURE_SETTINGS
        if k in new and not _same(k, old.get(k), new[k])
    }
    if diff:
        raise ExtractionError(
            f"{where} was made with other settings {reprlib.repr(diff)}; "
            "rerun with --overwrite or use another --cache-dir"
        )


def expected_settings(
    spec: ModelSpec, *, options: ExtractOptions, prompt: Prompt
) -> dict[str, Any]:
    """The settings of a run known before the model loads (the revision needs the model)."""
    return {
        "model": spec.model,
        "prompt_template": prompt.template,
        "max_length": options.max_length,
        "quantization": spec.resolved_quantization(),
        "dtype": spec.resolved_dtype(),
    }
