"""What one scored configuration records: its scores.csv row, provenance and mteb experiment.

The columns themselves are defined once in `cache.scores`; this turns a scored configuration
into them.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from moee_pipeline.cache import store
from moee_pipeline.score.combine import HS_LAST, Combination, format_layers
from moee_pipeline.score.encoder import TaskScore
from moee_pipeline.vocabulary import SUM, ZscoreFit, format_weight


@dataclass(frozen=True)
class Provenance:
    """Where a row's features came from (read from the cache manifest) and how it was fitted."""

    quantization: str
    dtype: str
    revision: str
    max_length: str
    features: str
    zscore_fit: ZscoreFit

    @classmethod
    def of(cls, manifest: dict[str, Any], *, zscore_fit: ZscoreFit) -> Provenance:
        """The provenance recorded for every row scored from one cache entry."""

        def text(key: str) -> str:
            value = manifest.get(key)
            return "" if value is None else str(value)

        return cls(
            quantization=text("quantization"),
            dtype=text("dtype"),
            revision=text("revision"),
            max_length=text("max_length"),
            features=store.features_fingerprint(manifest),
            zscore_fit=zscore_fit,
        )


@dataclass(frozen=True)
class ScoreRow:
    """One line of scores.csv; `model` is the model's slug, the name the cache and `moee ls` use."""

    model: str
    prompt: str
    combo: Combination
    score: TaskScore
    provenance: Provenance

    def as_csv(self) -> dict[str, str]:
        """The row as scores.csv strings (weight and weight_rule empty except MoEE-sum)."""
        c = self.combo
        is_sum = c.method == SUM
        return {
            "model": self.model,
            "prompt": self.prompt,
            "method": c.method,
            "weight": "" if c.weight is None else format_weight(c.weight),
            "weight_rule": c.weight_rule if is_sum else "",
            "rw": c.rw,
            "zscore": c.zscore,
            "pooling": c.pooling,
            "layers": format_layers(c.layers),
            "hs_layers": c.hs_layers,
            "task": self.score.task,
            "task_type": self.score.task_type,
            "split": self.score.split,
            "main_metric": self.score.main_metric,
            "main_score": repr(self.score.main_score),
            **dataclasses.asdict(self.provenance),
        }

    def experiment(self) -> dict[str, str]:
        """The configuration as mteb experiment kwargs (see `experiment_kwargs`)."""
        return experiment_kwargs(self.prompt, self.combo, self.provenance)


def experiment_kwargs(prompt: str, combo: Combination, provenance: Provenance) -> dict[str, str]:
    """One mteb experiment per configuration: everything but the task and split that tells
    scores.csv rows apart (an auto weight is "auto": its alpha varies by split)."""
    out = {
        "prompt": prompt,
        "method": combo.method,
        "rw": combo.rw,
        "zscore": combo.zscore,
        "pooling": combo.pooling,
        "layers": format_layers(combo.layers),
        "zscore_fit": provenance.zscore_fit,
        "features": provenance.features,
    }
    if combo.method == SUM:
        out["weight"] = combo.weight_text
    if combo.uses_hs and combo.hs_layers != HS_LAST:  # absent: the last layer, as before
        out["hs_layers"] = combo.hs_layers
    return out
