"""One (task, prompt) unit of `moee score`: what the serial run and the parallel workers share.

For each task: load its data once; for each prompt: read the cache once (one `score_unit`); for
each split: fit the z-score statistics on the texts that split's evaluation encodes
(`zscore_fit="split"`) or on every cached text (`"task"`); for each feature setting (rw, pooling,
layers, zscore): standardise once; then every method and weight is a cheap concatenation or
scaling, evaluated alone per split by mteb's own evaluators. No model is ever loaded.
"""

from __future__ import annotations

import dataclasses
import itertools
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import numpy as np

from moee_pipeline.cache import layout, store
from moee_pipeline.cache.snapshots import read_encoded_texts
from moee_pipeline.errors import MoeeError
from moee_pipeline.score.combine import (
    METHODS,
    Combination,
    Method,
    Parts,
    Pooling,
    RwMode,
    WeightRule,
    ZscoreMode,
    embed,
    parse_layers,
    prepare_parts,
)
from moee_pipeline.score.encoder import (
    CachedEncoder,
    TaskScore,
    cache_rows,
    evaluate_split,
    row_index,
)
from moee_pipeline.score.results import save_split_result
from moee_pipeline.score.rows import Provenance, ScoreRow, experiment_kwargs
from moee_pipeline.score.weights import auto_weight, pair_cosines, sample_pairs
from moee_pipeline.tasks.meta import encoder_meta

if TYPE_CHECKING:
    from mteb.abstasks import AbsTask

__all__ = ["ScoreConfig", "ScoreRow", "Unit", "combinations", "feature_columns", "score_unit"]

ZSCORE_FITS: tuple[str, ...] = ("split", "task")


class ScoreError(MoeeError, ValueError):
    """Scoring cannot go on as asked (e.g. no record of the texts a split encodes)."""


logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class ScoreConfig:
    """Everything one `moee score` run needs; each tuple is a sweep dimension."""

    model: str
    prompts: tuple[str, ...] = ("none",)
    tasks: tuple[str, ...] | None = None
    task_types: tuple[str, ...] | None = None
    methods: tuple[str, ...] = METHODS
    weights: tuple[float, ...] = (1.0,)
    auto_weight: bool = False
    rw: tuple[str, ...] = ("logits",)
    pooling: tuple[str, ...] = ("last",)
    layers: tuple[str, ...] = ("all",)
    zscore: tuple[str, ...] = ("auto",)
    splits: tuple[str, ...] = ("test",)
    zscore_fit: str = "split"
    cache_dir: Path = Path("cache")
    data_dir: Path | None = None
    output: Path = Path("results")
    progress: bool = True
    workers: int = 1  # (task, prompt) units scored at once (score/parallel.py)
    engine: str = "local"  # local: processes on this machine; ray: Ray tasks on a cluster
    ray_address: str | None = None

    def __post_init__(self) -> None:
        """Reject a z-score fit that would silently mean something else."""
        if self.zscore_fit not in ZSCORE_FITS:
            raise ScoreError(
                f"unknown --zscore-fit {self.zscore_fit!r}: choose from {', '.join(ZSCORE_FITS)}"
            )


def combinations(config: ScoreConfig) -> list[Combination]:
    """All configurations of a run, in a stable order, without duplicates.

    HS does not depend on RW options, so it is expanded over pooling and zscore only and
    records the first --rw/--layers value. `auto_weight` adds MoEE-sum with the label-free
    weight (its alpha is chosen per task, split and prompt) beside the fixed weights.
    """
    layer_sets = [parse_layers(spec) for spec in config.layers]
    combos: list[Combination] = []
    for method in config.methods:
        weights: list[tuple[float | None, str]] = [(None, "fixed")]
        if method == "MoEE-sum":
            weights = [(w, "fixed") for w in config.weights]
            weights += [(None, "auto")] if config.auto_weight else []
        rws = config.rw[:1] if method == "HS" else config.rw
        layers = layer_sets[:1] if method == "HS" else layer_sets
        for (w, rule), rw, pooling, lay, z in itertools.product(
            weights, rws, config.pooling, layers, config.zscore
        ):
            combos.append(
                # the option values are checked by Combination itself
                Combination(
                    method=cast(Method, method),
                    weight=w,
                    rw=cast(RwMode, rw),
                    pooling=cast(Pooling, pooling),
                    layers=lay,
                    zscore=cast(ZscoreMode, z),
                    weight_rule=cast(WeightRule, rule),
                )
            )
    return list(dict.fromkeys(combos))


def resolve_tasks(config: ScoreConfig, prompt_ids: Sequence[str]) -> list[str]:
    """Explicit --tasks, else every complete cached task of the model and prompts (by type)."""
    from moee_pipeline.tasks import select_tasks, task_type

    if config.tasks:
        return select_tasks(tasks=config.tasks, task_types=config.task_types)
    if config.task_types:
        select_tasks(task_types=config.task_types)  # validates the type names
    entries = [
        e
        for e in store.list_cached(config.cache_dir, model=config.model)
        if e.prompt_id in prompt_ids
    ]
    damaged = [e.problem for e in entries if e.problem]
    if damaged:  # never a silently partial evaluation
        raise store.CacheError(damaged[0])
    cached = [e.task for e in entries if e.complete]
    names = list(dict.fromkeys(cached))
    if config.task_types:
        names = [n for n in names if task_type(n) in config.task_types]
    if not names:
        raise store.CacheError(
            f"no complete cached tasks for model={layout.model_slug(config.model)} "
            f"prompt={','.join(prompt_ids)} in {config.cache_dir}: run `moee extract` first"
        )
    return names


def _setting(combo: Combination) -> tuple[object, ...]:
    """What `prepare_parts` depends on; combos sharing it share one standardisation."""
    return (combo.rw, combo.pooling, combo.layers, combo.zscore == "none")


@dataclass
class _SplitRun:
    """Per (task, prompt, split) working state: z-score fit rows and parts per setting."""

    features: store.Features
    fit_rows: np.ndarray | None
    parts: dict[tuple[object, ...], Parts] = field(default_factory=dict)

    def parts_for(self, combo: Combination) -> Parts:
        key = _setting(combo)
        if key not in self.parts:
            m = self.features.manifest
            arrays = self.features.arrays
            self.parts[key] = prepare_parts(
                hs=arrays.get(f"hs_{combo.pooling}"),
                rw=arrays.get(f"rw_{combo.pooling}"),
                rw_mode=combo.rw,
                layers=combo.layers,
                zscore_mode=combo.zscore,
                n_moe_layers=int(m["n_moe_layers"]),
                n_experts=int(m["n_experts"]),
                fit_rows=self.fit_rows,
            )
        return self.parts[key]


@dataclass(frozen=True)
class Unit:
    """One (task, prompt) of a run: its loaded task, cached features and where rows go."""

    config: ScoreConfig
    task: AbsTask
    prompt: str
    features: store.Features
    splits: tuple[str, ...]

    @property
    def name(self) -> str:
        return str(self.task.metadata.name)

    @property
    def hint(self) -> str:
        c = self.config
        return (
            f"run `moee extract --model {c.model} --prompt {self.prompt} --tasks {self.name} "
            f"--splits {','.join(self.splits)}`"
        )


def _encoded_texts(unit: Unit, split: str) -> list[str]:
    """The texts the split's evaluation encodes, as extraction recorded them beside the snapshot.

    With `--zscore-fit task` a cache without the record is recorded now (mteb's own evaluation
    with a recording encoder), since only the auto weight's pair sample needs the list.
    """
    texts = read_encoded_texts(unit.name, split, cache_dir=unit.config.cache_dir)
    if texts is not None:
        return texts
    if unit.config.zscore_fit == "split":
        raise ScoreError(
            f"{unit.name}/{split}: no record of the texts this split encodes; re-extract "
            f"({unit.hint}) or use --zscore-fit task"
        )
    from moee_pipeline.tasks import split_texts

    return split_texts(unit.task, splits=[split], cache_dir=unit.config.cache_dir)[split]


def _rows_of(texts: Sequence[str], index: dict[str, int], unit: Unit, split: str) -> np.ndarray:
    return cache_rows(texts, index, where=f"{unit.name}/{split}", hint=unit.hint)


def _auto_pairs(unit: Unit, split: str, index: dict[str, int]) -> np.ndarray:
    """Row pairs the auto weight is fitted on: the pairs the evaluation scores, else a sample."""
    from moee_pipeline.tasks.pairs import evaluation_pairs

    pairs = evaluation_pairs(unit.task, split)
    if pairs is not None:
        flat = [t for pair in pairs for t in pair]
        return _rows_of(flat, index, unit, split).reshape(-1, 2)
    rows = _rows_of(_encoded_texts(unit, split), index, unit, split)
    return rows[sample_pairs(len(rows))]


def _resolve(combo: Combination, run: _SplitRun, pairs: np.ndarray) -> Combination:
    """The combination with its auto weight chosen on this split's pairs (fixed ones as is)."""
    if combo.resolved:
        return combo
    parts = run.parts_for(combo)
    if parts.hs_unit is None or parts.rw_unit is None:
        raise ScoreError("MoEE-sum's auto weight needs both HS and RW parts")
    alpha = auto_weight(pair_cosines(parts.hs_unit, pairs), pair_cosines(parts.rw_unit, pairs))
    return dataclasses.replace(combo, weight=alpha)


def score_unit(unit: Unit, combos: Sequence[Combination], *, bar: Any = None) -> list[ScoreRow]:
    """Score one (task, prompt) under every configuration and split; write mteb's results.

    Each split is evaluated alone on a fresh private copy of the task, with z-score statistics
    fitted as `zscore_fit` says, so adding another split's texts to the cache changes nothing.
    """
    config, feats = unit.config, unit.features
    index = row_index(feats.text_ids)
    provenance = Provenance.of(feats.manifest, zscore_fit=config.zscore_fit)
    slug = layout.model_slug(config.model)
    revision = str(feats.manifest.get("revision") or "unknown")
    task_fit: _SplitRun | None = None
    rows: list[ScoreRow] = []
    for split in unit.splits:
        if config.zscore_fit == "split":
            fit = _rows_of(_encoded_texts(unit, split), index, unit, split)
            run = _SplitRun(features=feats, fit_rows=fit)
        else:
            task_fit = task_fit or _SplitRun(features=feats, fit_rows=None)
            run = task_fit
        pairs = _auto_pairs(unit, split, index) if any(not c.resolved for c in combos) else None
        done: dict[tuple[object, ...], TaskScore] = {}
        for combo in combos:
            if bar is not None:
                bar.set_postfix_str(f"{unit.name} {unit.prompt} {split} {combo.folder}", False)
            resolved = _resolve(combo, run, pairs) if pairs is not None else combo
            embeddings = embed(run.parts_for(resolved), resolved)
            key = (resolved.effective_key(), resolved.weight_rule)
            if key not in done:
                meta = encoder_meta(
                    name=f"moee/{slug}",
                    revision=revision,
                    embed_dim=int(embeddings.shape[1]),
                    experiment=experiment_kwargs(unit.prompt, resolved, provenance),
                )
                encoder = CachedEncoder(
                    index=index, embeddings=embeddings, name=meta.name or "", hint=unit.hint
                )
                done[key], result = evaluate_split(unit.task, encoder=encoder, split=split)
                save_split_result(config.output, meta, result)
            rows.append(ScoreRow(config.model, unit.prompt, resolved, done[key], provenance))
            if bar is not None:
                bar.update(1)
    return rows


def feature_columns(combos: Sequence[Combination]) -> list[str]:
    """The cached feature columns a set of configurations reads."""
    return sorted(
        {f"hs_{c.pooling}" for c in combos if c.uses_hs}
        | {f"rw_{c.pooling}" for c in combos if c.uses_rw}
    )
