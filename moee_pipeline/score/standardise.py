"""One feature setting's z-scoring, fitted once and applied to any rows: whole tasks or chunks.

A setting (rw mode, layers, zscore mode; pooling picks the columns) is fitted on the declared fit
rows and then turns the raw features of any rows into the standardised, normalised blocks every
method is built from (`combine.Parts`). Fitting streams: the fit rows arrive in blocks (the
chunks of a corpus, or one block for a task held in memory), each block's statistics merged in
float64 (`score.stats`), so a corpus is standardised without ever being held. Every step after
the statistics is row-wise, so the rows of a chunk come out exactly as the same rows of the
whole matrix would.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np

from moee_pipeline.score.combine import (
    EPS,
    Combination,
    CombineError,
    Parts,
    l2_normalize,
    select_layers,
    softmax_per_layer,
)
from moee_pipeline.score.stats import ColumnStats
from moee_pipeline.vocabulary import SUM, RwMode, ZscoreMode

__all__ = ["Setting", "Standardiser", "fit_standardiser", "prepare_parts"]

#: One block of fit rows: their raw HS and RW (None where the setting reads no such column).
Block = tuple[np.ndarray | None, np.ndarray | None]


@dataclass(frozen=True)
class Setting:
    """What the standardisation depends on besides the fit rows; combos sharing it share one."""

    rw_mode: RwMode
    layers: tuple[int, ...] | None
    zscore_mode: ZscoreMode
    n_moe_layers: int
    n_experts: int

    @classmethod
    def of(cls, combo: Combination, *, n_moe_layers: int, n_experts: int) -> Setting:
        """The setting of a configuration (zscore auto and all standardise alike: only HS's
        use of z(hs) differs, which `combine.embed` decides)."""
        mode: ZscoreMode = "none" if combo.zscore == "none" else "auto"
        return cls(combo.rw, combo.layers, mode, n_moe_layers, n_experts)

    def rw_view(self, rw: np.ndarray) -> np.ndarray:
        """Router weights as the setting reads them: softmax per layer if asked, its layers."""
        rw = np.asarray(rw, dtype=np.float32)
        if self.rw_mode == "softmax":
            rw = softmax_per_layer(rw, n_moe_layers=self.n_moe_layers, n_experts=self.n_experts)
        return select_layers(
            rw, layers=self.layers, n_moe_layers=self.n_moe_layers, n_experts=self.n_experts
        )


@dataclass(frozen=True)
class Standardiser:
    """A setting fitted on its fit rows: the statistics of HS and of the setting's RW view."""

    setting: Setting
    hs_stats: ColumnStats | None
    rw_stats: ColumnStats | None

    def parts(self, *, hs: np.ndarray | None, rw: np.ndarray | None, units: bool = True) -> Parts:
        """The blocks of these rows (raw features in); `units=False` skips the L2-normalised
        ones, which only MoEE-sum reads."""
        hs_z = hs_unit = rw_z = rw_unit = None
        if hs is not None:
            hs = np.asarray(hs, dtype=np.float32)
            hs_z = self._standardise(hs, self.hs_stats)
            hs_unit = l2_normalize(hs_z) if units else None
        if rw is not None:
            rw_z = self._standardise(self.setting.rw_view(rw), self.rw_stats)
            rw_unit = l2_normalize(rw_z) if units else None
        return Parts(hs=hs, hs_z=hs_z, rw_z=rw_z, hs_unit=hs_unit, rw_unit=rw_unit)

    def _standardise(self, x: np.ndarray, stats: ColumnStats | None) -> np.ndarray:
        if self.setting.zscore_mode == "none":
            return np.asarray(x, np.float32)
        if stats is None:
            raise CombineError("cannot fit z-score statistics on zero rows")
        return stats.apply(x, eps=EPS)


def fit_standardiser(setting: Setting, blocks: Iterable[Block]) -> Standardiser:
    """Fit a setting on the fit rows, block by block, in one pass.

    Raises:
        CombineError: the blocks hold no row (a setting that z-scores needs some).
    """
    hs_stats: ColumnStats | None = None
    rw_stats: ColumnStats | None = None
    if setting.zscore_mode == "none":
        return Standardiser(setting, None, None)
    for hs, rw in blocks:
        if hs is not None and hs.shape[0]:
            block = ColumnStats.of(hs)
            hs_stats = block if hs_stats is None else hs_stats.merge(block)
        if rw is not None and rw.shape[0]:
            block = ColumnStats.of(setting.rw_view(rw))
            rw_stats = block if rw_stats is None else rw_stats.merge(block)
    if hs_stats is None and rw_stats is None:
        raise CombineError("cannot fit z-score statistics on zero rows")
    return Standardiser(setting, hs_stats, rw_stats)


def needs_units(combo: Combination) -> bool:
    """Whether a configuration's embedding is built from the L2-normalised blocks."""
    return combo.method == SUM


def prepare_parts(
    *,
    hs: np.ndarray | None,
    rw: np.ndarray | None,
    rw_mode: RwMode,
    layers: tuple[int, ...] | None,
    zscore_mode: ZscoreMode,
    n_moe_layers: int,
    n_experts: int,
    fit_rows: np.ndarray | None = None,
) -> Parts:
    """Apply softmax, layer selection and z-scoring (fitted on `fit_rows`) to whole matrices.

    None inputs stay None; `fit_rows=None` fits on every row. The in-memory case of
    `fit_standardiser` + `Standardiser.parts`: one block of fit rows.
    """
    mode: ZscoreMode = "none" if zscore_mode == "none" else "auto"
    setting = Setting(rw_mode, layers, mode, n_moe_layers, n_experts)
    pick = slice(None) if fit_rows is None else np.asarray(fit_rows, dtype=np.int64)
    block: Block = (
        None if hs is None else np.asarray(hs, np.float32)[pick],
        None if rw is None else np.asarray(rw, np.float32)[pick],
    )
    return fit_standardiser(setting, [block]).parts(hs=hs, rw=rw)
