"""What a cache entry records about how it was made: settings, shapes, versions."""

from __future__ import annotations

import importlib.metadata
from typing import TYPE_CHECKING, Any

from moee_pipeline.cache import layout, parts
from moee_pipeline.vocabulary import HsStore

if TYPE_CHECKING:
    from moee_pipeline.models.loading import LoadedModel
    from moee_pipeline.prompts import Prompt

_PACKAGES = (
    "moee-pipeline",
    "torch",
    "transformers",
    "bitsandbytes",
    "accelerate",
    "mteb",
    "pyarrow",
)


def package_versions() -> dict[str, str | None]:
    """Installed versions of the packages that shape the features."""
    versions: dict[str, str | None] = {}
    for name in _PACKAGES:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            versions[name] = None
    return versions


def shard_of(text_id: str, count: int) -> int:
    """The shard a text belongs to: stable across runs, machines and text order."""
    return int(text_id[:12], 16) % count


def hs_columns_of(hs_layers: HsStore) -> list[str]:
    """The hidden-state columns a run with `--hs-layers hs_layers` stores."""
    layers = list(parts.HS_LAYER_COLUMNS) if hs_layers == "all" else []
    return ["hs_last", "hs_mean", *layers]


def run_metadata(
    loaded: LoadedModel,
    *,
    prompt: Prompt,
    task: str,
    max_length: int,
    model_id: str,
    hs_layers: HsStore = "last",
) -> dict[str, Any]:
    """Settings and shapes stored in every part's schema and in the manifest (with the HS
    columns the entry holds, and the number of decoder layers they cover)."""
    return {
        "schema_version": parts.SCHEMA_VERSION,
        "model": model_id,
        "model_slug": layout.model_slug(model_id),
        "revision": loaded.info.get("revision"),
        "model_type": getattr(loaded.model.config, "model_type", None),
        "quantization": loaded.quantization,
        "dtype": loaded.dtype,
        "device": str(loaded.device),
        "prompt": prompt.name,
        "prompt_id": prompt.id,
        "prompt_template": prompt.template,
        "max_length": max_length,
        "task": task,
        "n_moe_layers": len(loaded.routers),
        "n_experts": loaded.n_experts,
        "hidden_size": loaded.hidden_size,
        "moe_layers": loaded.moe_layers,
        "n_layers": int(loaded.model.config.num_hidden_layers),
        "hs_columns": hs_columns_of(hs_layers),
        "versions": package_versions(),
        **{k: v for k, v in loaded.info.items() if k != "revision"},
    }
