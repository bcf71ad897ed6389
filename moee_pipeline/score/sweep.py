"""A run's sweep: the configurations (`Combination`s) a `ScoreConfig` asks for, and the cached
feature columns they read."""

from __future__ import annotations

import itertools
from collections.abc import Sequence

from moee_pipeline.score.combine import HS_LAST, Combination, parse_hs_layers, parse_layers
from moee_pipeline.score.config import ScoreConfig
from moee_pipeline.vocabulary import AUTO, FIXED, HS, RW, SUM, WeightRule

__all__ = ["combinations", "feature_columns"]


def combinations(config: ScoreConfig) -> list[Combination]:
    """All configurations of a run, in a stable order, without duplicates.

    HS does not depend on RW options, so it is expanded over pooling, HS layers and zscore
    only and records the first --rw/--layers value; RW reads no HS and records "last".
    `auto_weight` adds MoEE-sum with the label-free weight (its alpha is
    chosen per task, split and prompt) beside the fixed weights.
    """
    layer_sets = [parse_layers(spec) for spec in config.layers]
    hs_sets = list(dict.fromkeys(parse_hs_layers(spec) for spec in config.hs_layers))
    combos: list[Combination] = []
    for method in config.methods:
        weights: list[tuple[float | None, WeightRule]] = [(None, FIXED)]
        if method == SUM:
            weights = [(w, FIXED) for w in config.weights]
            weights += [(None, AUTO)] if config.auto_weight else []
        rws = config.rw[:1] if method == HS else config.rw
        layers = layer_sets[:1] if method == HS else layer_sets
        hs_layers = [HS_LAST] if method == RW else hs_sets
        for (weight, rule), rw, pooling, lay, hs, zscore in itertools.product(
            weights, rws, config.pooling, layers, hs_layers, config.zscore
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
                    hs_layers=hs,
                )
            )
    return list(dict.fromkeys(combos))


def feature_columns(combos: Sequence[Combination]) -> list[str]:
    """The cached feature columns a set of configurations reads."""
    return sorted(
        {
            f"hs_{c.pooling}" if c.hs_layers == HS_LAST else f"hs_layers_{c.pooling}"
            for c in combos
            if c.uses_hs
        }
        | {f"rw_{c.pooling}" for c in combos if c.uses_rw}
    )
