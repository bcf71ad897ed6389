"""When a cache entry can be reused or extended: the settings it was made with must be these.

Torch-free, like the rest of what runs before the model loads: the local engine checks a task
it finds complete here before loading anything; the settings that need the model (its
revision) are checked again once it has loaded.
"""

from __future__ import annotations

import reprlib
from pathlib import Path
from typing import Any

from moee_pipeline.cache import parts, store
from moee_pipeline.extract.runinfo import hs_columns_of
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


def extends_hs(
    old: dict[str, Any], options: ExtractOptions, *, where: Path, complete: bool
) -> bool:
    """Whether a run adds every layer's hidden states to an entry that holds the last layer's
    only (`--hs-layers all --extend`); any other mismatch of HS columns is refused in one line.

    An entry holding every layer's is complete for `--hs-layers last` as well (its hs_last and
    hs_mean are there), but texts added to it must have every column: that needs `all`.
    """
    held = parts.hs_columns(old)
    if set(hs_columns_of(options.hs_layers)) <= set(held):
        return False
    if not complete:
        raise ExtractionError(
            f"{where} is partly extracted with --hs-layers last: finish it with that, then "
            "extend it with --hs-layers all --extend, or rerun with --overwrite"
        )
    if not options.extend:
        raise ExtractionError(
            f"{where} holds the last layer's hidden states only: rerun with --extend to add "
            "every layer's, or with --overwrite"
        )
    if options.shard[1] > 1:
        raise ExtractionError(f"{where}: --extend works on whole entries; run it without --shard")
    return True


def check_hs_room(old: dict[str, Any], options: ExtractOptions, *, where: Path) -> None:
    """Refuse to add texts with fewer HS columns than the entry's parts hold."""
    if set(parts.hs_columns(old)) - {"hs_last", "hs_mean"} and options.hs_layers != "all":
        raise ExtractionError(
            f"{where} holds every layer's hidden states: add texts to it with --hs-layers all"
        )
