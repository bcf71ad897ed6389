"""How cached features become one embedding per text: HS, RW, MoEE (concat) and MoEE (sum).

The math, with `hs` and `rw` the selected feature matrices of one task (rows = all of its
cached texts) and z(X) = (X - mean(X)) / (std(X) + 1e-8) per column, population std:

- HS = hs (z(hs) with `zscore="all"`); RW = z(rw);
- MoEE-concat = [z(hs), z(rw)];
- MoEE-sum(w) = [z(hs)/|z(hs)|, sqrt(w) * z(rw)/|z(rw)|], rows L2-normalised, so the dot product of
  two packed vectors is cos(hs) + w * cos(rw) exactly and mteb's unmodified evaluators (cosine, dot,
  euclidean, k-means, logistic regression) all see the weighted-sum geometry.
- `zscore="none"` z-scores nothing. Statistics cover a declared set of rows, never a batch:
  the texts one split's evaluation encodes (`fit_rows`, the default of `moee score`) or every
  cached row of the task (`--zscore-fit task`); they are then applied to every row.

Layers are POSITIONS among the MoE layers (0..n_moe_layers-1, the order of the layer-major RW
vector), not model layer indices: for DeepSeek-MoE (layer 0 dense) position 0 is model layer 1.
The manifest's `moe_layers` maps positions to model layer indices. HS layers (`hs_layers`) are
positions among all decoder layers (0..n_layers-1, dense ones included); several are
concatenated in layer order, each block scaled to unit RMS (`hs_features`).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from moee_pipeline.errors import MoeeError
from moee_pipeline.score.stats import ColumnStats
from moee_pipeline.vocabulary import (
    AUTO,
    CONCAT,
    FIXED,
    HS,
    METHODS,
    POOLINGS,
    RW,
    RW_MODES,
    SUM,
    WEIGHT_RULES,
    ZSCORE_MODES,
    Method,
    Pooling,
    RwMode,
    WeightRule,
    ZscoreMode,
    check_choice,
    check_weight,
    format_weight,
)

logger = logging.getLogger(__name__)

EPS = 1e-8


class CombineError(MoeeError, ValueError):
    """A configuration that cannot be built (bad layers, weight, method); says what to use."""


def zscore(x: np.ndarray, *, fit_rows: np.ndarray | None = None, eps: float = EPS) -> np.ndarray:
    """Standardise each column with the statistics of `fit_rows` (all rows if None).

    Population std; statistics accumulate in float64 so that large tasks do not lose precision,
    and are applied to every row; the result is float32. The statistics depend only on the fit
    rows (in the order given), so rows added to the matrix later change nothing for them.
    A corpus read in chunks gathers the same statistics block by block (`score.stats`).
    """
    x64 = np.asarray(x, dtype=np.float64)
    fit = x64 if fit_rows is None else x64[np.asarray(fit_rows, dtype=np.int64)]
    if fit.shape[0] == 0:
        raise CombineError("cannot fit z-score statistics on zero rows")
    return ColumnStats.of(fit).apply(x64, eps=eps)


def l2_normalize(x: np.ndarray) -> np.ndarray:
    """Rows scaled to unit length; an all-zero row stays zero instead of becoming NaN."""
    x = np.asarray(x, dtype=np.float32)
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    return x / np.where(norms > 0, norms, 1.0).astype(np.float32)


def parse_layers(
    spec: str | None, *, option: str = "--layers", what: str = "MoE-layer positions"
) -> tuple[int, ...] | None:
    """Parse "0-7", "0,4,8" or "0-3,8,10-11" into sorted unique MoE-layer positions (or, for
    `--hs-layers`, decoder-layer positions: `option` and `what` name them in errors).

    None and "all" mean every MoE layer (returned as None); "" names none and is refused, as
    every empty selection is, rather than read as "all".
    """
    if spec is None or spec.strip().lower() == "all":
        return None
    positions: set[int] = set()
    for part in spec.split(","):
        part = part.strip()
        if not part:
            continue
        try:
            if "-" in part:
                start, stop = (int(v) for v in part.split("-", 1))
                if stop < start:
                    raise ValueError
                positions.update(range(start, stop + 1))
            else:
                positions.add(int(part))
        except ValueError:
            raise CombineError(f"bad {option} {spec!r}: use {what} like 0-7 or 0,4,8") from None
    if not positions:
        raise CombineError(f"bad {option} {spec!r}: name positions like 0-7 or 0,4,8, or all")
    if min(positions) < 0:
        raise CombineError(f"bad {option} {spec!r}: positions must be >= 0")
    return tuple(sorted(positions))


#: `--hs-layers last`: the last layer's hidden state, the `hs_last`/`hs_mean` columns.
HS_LAST = "last"


def parse_hs_layers(spec: str) -> str:
    """The canonical text of an `--hs-layers` choice: "last", "all" or decoder-layer positions
    ("0-3,8"), 0..n_layers-1 in the order of `output_hidden_states[1:]` (dense layers count)."""
    text = spec.strip().lower()
    if text == HS_LAST:
        return HS_LAST
    layers = parse_layers(text, option="--hs-layers", what="decoder-layer positions (or last, all)")
    return format_layers(layers)


def hs_column(pooling: Pooling, hs_layers: str) -> str:
    """The cached column an `--hs-layers` choice reads: `hs_<pooling>` for "last", else
    `hs_layers_<pooling>` (every decoder layer's, layer-major)."""
    return f"hs_{pooling}" if hs_layers == HS_LAST else f"hs_layers_{pooling}"


def hs_positions(hs_layers: str, n_layers: int) -> list[int] | None:
    """The decoder-layer positions of an `--hs-layers` choice (None: "last"), checked against
    the model's `n_layers`."""
    if hs_layers == HS_LAST:
        return None
    chosen = parse_layers(hs_layers, option="--hs-layers", what="decoder-layer positions")
    positions = list(range(n_layers)) if chosen is None else list(chosen)
    bad = [p for p in positions if p >= n_layers]
    if bad:
        raise CombineError(
            f"--hs-layers {hs_layers}: positions {format_layers(tuple(bad))} out of range; this "
            f"model has {n_layers} decoder layers (positions 0-{n_layers - 1})"
        )
    return positions


def layer_blocks(matrix: np.ndarray, positions: Sequence[int], n_layers: int) -> np.ndarray:
    """The chosen layers' blocks of an `hs_layers_*` matrix, as (rows, layers, hidden) float32."""
    if n_layers < 1 or matrix.shape[1] % n_layers:
        raise CombineError(f"hs_layers width {matrix.shape[1]} is not n_layers {n_layers} x hidden")
    cube = matrix.reshape(matrix.shape[0], n_layers, -1)
    return np.asarray(cube[:, list(positions), :], dtype=np.float32)


def layer_scale(square_norms: np.ndarray, count: int) -> np.ndarray:
    """Each layer's factor to unit RMS row norm, from the fit rows' summed squared row norms
    per layer (a layer of zeros keeps factor 1)."""
    rms = np.sqrt(square_norms / max(count, 1))
    return (1.0 / np.where(rms > 0, rms, 1.0)).astype(np.float32)


def hs_features(
    arrays: dict[str, np.ndarray],
    *,
    pooling: Pooling,
    hs_layers: str,
    n_layers: int,
    fit_rows: np.ndarray | None = None,
) -> np.ndarray | None:
    """The HS matrix of an `--hs-layers` choice: the `hs_<pooling>` column for "last", else the
    chosen blocks of `hs_layers_<pooling>` in layer order, None where the column was not read.

    Several layers are concatenated with each block scaled to unit RMS row norm over the fit
    rows (one scalar per layer): pre-norm layer outputs grow in norm with depth and the last
    one is normed, so a raw concatenation would be the few largest layers' geometry. A single
    layer is left as it is (a scalar changes no cosine), so layer L alone scores like
    `hs_last` does for the last layer. (Scoring fits the same scale streaming, in
    `score.standardise`; this is the whole-matrix form.)
    """
    matrix = arrays.get(hs_column(pooling, hs_layers))
    positions = hs_positions(hs_layers, n_layers)
    if matrix is None or positions is None:
        return matrix
    blocks = layer_blocks(matrix, positions, n_layers)
    if len(positions) > 1:
        fit = blocks if fit_rows is None else blocks[np.asarray(fit_rows, dtype=np.int64)]
        square_norms = (fit.astype(np.float64) ** 2).sum(axis=2).sum(axis=0)  # per layer
        blocks = blocks * layer_scale(square_norms, fit.shape[0])[None, :, None]
    return np.ascontiguousarray(blocks).reshape(matrix.shape[0], -1)


def format_layers(layers: tuple[int, ...] | None) -> str:
    """Canonical text of a layer selection ("all", "0-7", "0,4,8-9"), used in scores.csv."""
    if layers is None:
        return "all"
    runs: list[str] = []
    start = prev = layers[0]
    for value in [*layers[1:], None]:
        if value is not None and value == prev + 1:
            prev = value
            continue
        runs.append(str(start) if start == prev else f"{start}-{prev}")
        if value is not None:
            start = prev = value
    return ",".join(runs)


def _as_layers(rw: np.ndarray, *, n_moe_layers: int, n_experts: int) -> np.ndarray:
    """View the layer-major RW matrix as (rows, layers, experts), checking its width."""
    if rw.shape[1] != n_moe_layers * n_experts:
        raise CombineError(
            f"RW width {rw.shape[1]} != n_moe_layers {n_moe_layers} x n_experts {n_experts}"
        )
    return rw.reshape(rw.shape[0], n_moe_layers, n_experts)


def select_layers(
    rw: np.ndarray, *, layers: tuple[int, ...] | None, n_moe_layers: int, n_experts: int
) -> np.ndarray:
    """Keep the RW blocks of the given MoE-layer positions (None keeps all)."""
    cube = _as_layers(rw, n_moe_layers=n_moe_layers, n_experts=n_experts)
    if layers is None:
        return np.asarray(rw, dtype=np.float32)
    bad = [p for p in layers if p >= n_moe_layers]
    if bad:
        raise CombineError(
            f"--layers {format_layers(layers)}: positions {format_layers(tuple(bad))} out of range;"
            f" this model has {n_moe_layers} MoE layers (positions 0-{n_moe_layers - 1})"
        )
    return np.ascontiguousarray(cube[:, list(layers), :], dtype=np.float32).reshape(rw.shape[0], -1)


def softmax_per_layer(rw: np.ndarray, *, n_moe_layers: int, n_experts: int) -> np.ndarray:
    """Turn each layer's router logits into probabilities over that layer's experts."""
    cube = _as_layers(
        np.asarray(rw, dtype=np.float32), n_moe_layers=n_moe_layers, n_experts=n_experts
    )
    shifted = cube - cube.max(axis=2, keepdims=True)
    exp = np.exp(shifted)
    return (exp / exp.sum(axis=2, keepdims=True)).reshape(rw.shape[0], -1)


@dataclass(frozen=True)
class Combination:
    """One embedding configuration: method, RW weight (MoEE-sum only), feature options.

    `weight_rule="auto"` is MoEE-sum with the label-free weight (see `score.weights`): its weight
    is None until chosen for one (task, split, prompt), then the chosen alpha.
    """

    method: Method
    weight: float | None = None
    rw: RwMode = "logits"
    pooling: Pooling = "last"
    layers: tuple[int, ...] | None = None
    zscore: ZscoreMode = "auto"
    weight_rule: WeightRule = FIXED
    #: Which layers' hidden states: "last" (hs_last/hs_mean), "all" or positions ("0-3").
    hs_layers: str = HS_LAST

    def __post_init__(self) -> None:
        """Reject configurations that would silently mean something else."""
        if parse_hs_layers(self.hs_layers) != self.hs_layers:
            raise CombineError(f"hs_layers {self.hs_layers!r} is not canonical; parse it first")
        try:
            check_choice("method", self.method, METHODS)
            check_choice("rw", self.rw, RW_MODES)
            check_choice("pooling", self.pooling, POOLINGS)
            check_choice("zscore", self.zscore, ZSCORE_MODES)
            check_choice("weight rule", self.weight_rule, WEIGHT_RULES)
        except ValueError as error:
            raise CombineError(str(error)) from None
        if self.weight_rule == AUTO and self.method != SUM:
            raise CombineError(f"{self.method} takes no weight rule (only {SUM} does)")
        if self.method == SUM and not (self.weight_rule == AUTO and self.weight is None):
            if self.weight is None:
                raise CombineError(f"{SUM} needs a weight (a number >= 0)")
            try:
                check_weight(self.weight)
            except ValueError as error:
                raise CombineError(f"{SUM} {error}") from None
        elif self.weight is not None:
            raise CombineError(f"{self.method} takes no weight (only {SUM} does)")

    @property
    def uses_hs(self) -> bool:
        """Whether the embedding contains the hidden state."""
        return self.method != RW

    @property
    def uses_rw(self) -> bool:
        """Whether the embedding contains router weights."""
        return self.method != HS

    @property
    def resolved(self) -> bool:
        """Whether the embedding is fully defined (an auto weight has been chosen)."""
        return self.method != SUM or self.weight is not None

    @property
    def weight_text(self) -> str:
        """The weight as a label: "auto" for the label-free rule, the number otherwise."""
        if self.weight_rule == AUTO:
            return AUTO
        return "" if self.weight is None else format_weight(self.weight)

    @property
    def folder(self) -> str:
        """A readable, unique, path-safe name of this configuration (auto weights as "auto")."""
        weight = f"_w{self.weight_text}" if self.method == SUM else ""
        hs = "" if self.hs_layers == HS_LAST else f"_hs-{self.hs_layers.replace(',', '+')}"
        return (
            f"{self.method}{weight}_rw-{self.rw}_pool-{self.pooling}"
            f"_layers-{format_layers(self.layers).replace(',', '+')}{hs}_z-{self.zscore}"
        )

    def effective_key(self) -> tuple[object, ...]:
        """What changes the embedding: HS ignores RW options, so equal keys score equal."""
        if self.method == HS:
            return (HS, self.pooling, self.hs_layers, self.zscore == "all")
        return (
            self.method,
            self.weight,
            self.rw,
            self.pooling,
            self.layers,
            self.hs_layers if self.uses_hs else HS_LAST,
            self.zscore != "none",
        )


@dataclass(frozen=True)
class Parts:
    """The standardised, normalised building blocks of one (rw, pooling, layers, zscore) setting.

    Computed once per task and setting; every method and every weight is then a cheap
    concatenation or scaling of these arrays.
    """

    hs: np.ndarray | None  # raw hs
    hs_z: np.ndarray | None  # z(hs), or hs when zscore="none"
    rw_z: np.ndarray | None  # z(rw), or rw when zscore="none"
    hs_unit: np.ndarray | None  # rows of hs_z, L2-normalised
    rw_unit: np.ndarray | None  # rows of rw_z, L2-normalised


def _need(array: np.ndarray | None, what: str) -> np.ndarray:
    if array is None:
        raise CombineError(f"this method needs {what}, which was not prepared")
    return array


def embed(parts: Parts, combo: Combination) -> np.ndarray:
    """The (rows, dim) float32 embedding matrix of one configuration."""
    if combo.method == HS:
        return _need(parts.hs_z if combo.zscore == "all" else parts.hs, "hs")
    if combo.method == RW:
        return _need(parts.rw_z, "rw")
    if combo.method == CONCAT:
        return np.concatenate([_need(parts.hs_z, "hs"), _need(parts.rw_z, "rw")], axis=1)
    if combo.weight is None:
        raise CombineError(f"{SUM}'s auto weight has not been chosen yet")
    scale = np.float32(np.sqrt(combo.weight))  # __post_init__ guarantees weight >= 0
    return np.concatenate([_need(parts.hs_unit, "hs"), scale * _need(parts.rw_unit, "rw")], axis=1)
