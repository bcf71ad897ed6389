"""A run's sweep: the configurations (`Combination`s) a `ScoreConfig` asks for, and the cached
feature columns they read."""

from __future__ import annotations

import itertools
from collections.abc import Sequence

from moee_pipeline.score.combine import Combination, parse_layers
from moee_pipeline.score.config import ScoreConfig
from moee_pipeline.vocabulary import AUTO, FIXED, HS, SUM, WeightRule

__all__ = ["combinations", "feature_columns"]


def combinations(config: ScoreConfig) -> list[Combination]:
    """All configurations of a run, in a stable order, without duplicates.

    HS does not depend on RW options, so it is expanded over pooling and zscore only and
    records the first --rw/--layers value. `auto_weight` adds MoEE-sum with the label-free
    weight (its alpha is chosen per task, split and prompt) beside the fixed weights.
    """
    layer_sets = [parse_layers(spec) for spec in config.layers]
    combos: list[Combination] = []
    for method in config.methods:
        weights: list[tuple[float | None, WeightRule]] = [(None, FIXED)]
        if method == SUM:
            weights = [(w, FIXED) for w in config.weights]
            weights += [(None, AUTO)] if config.auto_weight else []
        rws = config.rw[:1] if method == HS else config.rw
        layers = layer_sets[:1] if method == HS else layer_sets
        for (weight, rule), rw, pooling, lay, zscore in itertools.product(
            weights, rws, config.pooling, layers, config.zscore
        ):
            combos.append(
                Combination(
                    method=method,
                    weight=weight,
                    rw=rw,
                    pooling=pooling,
                    layers=lay,
                    zscore=zscore,
                    weight_rule=rule,
                )
            )
    return list(dict.fromkeys(combos))


def feature_columns(combos: Sequence[Combination]) -> list[str]:
    """The cached feature columns a set of configurations reads."""
    return sorted(
        {f"hs_{c.pooling}" for c in combos if c.uses_hs}
        | {f"rw_{c.pooling}" for c in combos if c.uses_rw}
    )
