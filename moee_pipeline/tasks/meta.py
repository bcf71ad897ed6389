"""The one way this package describes an encoder to mteb (its `ModelMeta`).

mteb's encoder protocol requires `mteb_model_meta`; both of our encoders (the recorder of
extraction, the cached-feature encoder of scoring) and the results folder build it here, so they
agree on the similarity function (cosine) and on how an experiment is named.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from mteb.models.model_meta import ModelMeta, ScoringFunction


def encoder_meta(
    *, name: str, revision: str, embed_dim: int, experiment: Mapping[str, Any] | None = None
) -> ModelMeta:
    """Metadata of an encoder whose similarity is cosine; `experiment` names one mteb
    experiment (a configuration) of the model."""
    meta = ModelMeta.create_empty(
        {
            "name": name,
            "revision": revision,
            "embed_dim": embed_dim,
            "similarity_fn_name": ScoringFunction.COSINE,
            "framework": [],
        }
    )
    if experiment is None:
        return meta
    return meta.model_copy(update={"experiment_kwargs": dict(experiment)})
