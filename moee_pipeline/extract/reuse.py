"""When a cache entry can be reused or extended: the settings it was made with must be these.

Torch-free, like the rest of what runs before the model loads: the local engine checks a task
it finds complete here before loading anything; the settings that need the model (its
revision) are checked again once it has loaded.
"""

from __future__ import annotations

import reprlib
from pathlib import Path
from typing import Any

from moee_pipeline.cache import store
from moee_pipeline.extract.settings import ExtractionError, ExtractOptions, storage_settings
from moee_pipeline.models.spec import ModelSpec
from moee_pipeline.prompts import Prompt


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
        k: (store.feature_setting(old, k), new[k])
        for k in store.FEATURE_SETTINGS
        if k in new and not _same(k, store.feature_setting(old, k), new[k])
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
        **storage_settings(options),
    }
