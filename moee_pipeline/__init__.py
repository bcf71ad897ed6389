"""moee-pipeline: MoE router weights as embeddings, extracted once and scored on MTEB.

The public entry points are importable from here; they load lazily, so that
`import moee_pipeline` on a scoring machine does not pull in torch.
"""

import importlib as _importlib
from typing import Any as _Any

__version__ = "0.1.0"

# name -> module that defines it: the functions users call from scripts and notebooks
_PUBLIC = {
    "run_extract": "moee_pipeline.extract.run",
    "ExtractOptions": "moee_pipeline.extract.settings",
    "ModelSpec": "moee_pipeline.models.spec",
    "run_score": "moee_pipeline.score.run",
    "ScoreConfig": "moee_pipeline.score.config",
    "read_features": "moee_pipeline.cache.store",
    "list_cached": "moee_pipeline.cache.store",
    "inventory": "moee_pipeline.cache.inventory",
    "load_scores": "moee_pipeline.report.tables",
    "resolve_prompt": "moee_pipeline.prompts",
    "MoeeError": "moee_pipeline.errors",
}

__all__ = sorted(_PUBLIC)


def __getattr__(name: str) -> _Any:
    if name not in _PUBLIC:
        raise AttributeError(f"module 'moee_pipeline' has no attribute {name!r}")
    return getattr(_importlib.import_module(_PUBLIC[name]), name)


def __dir__() -> list[str]:
    """The public API only (what tab completion offers), not this module's own helpers."""
    return sorted([*__all__, "__version__"])
