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
    HS_LAST,
    Combination,
    CombineError,
    Parts,
    hs_positions,
    l2_normalize,
    layer_blocks,
    layer_scale,
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
    #: `--hs-layers`: "last" (the hs_* column), else decoder-layer positions of hs_layers_*.
    hs_layers: str = HS_LAST
    n_layers: int = 0

    @classmethod
    def of(
        cls, combo: Combination, *, n_moe_layers: int, n_experts: int, n_layers: int = 0
    ) -> Setting:
        """The setting of a configuration (zscore auto and all standardise alike: only HS's
        use of z(hs) differs, which `combine.embed` decides)."""
        mode: ZscoreMode = "none" if combo.zscore == "none" else "auto"
        return cls(combo.rw, combo.layers, mode, n_moe_layers, n_experts, combo.hs_layers, n_layers)

    @property
    def hs_positions(self) -> list[int] | None:
        """The decoder layers HS is read from (None: the last layer's own columns)."""
        return hs_positions(self.hs_layers, self.n_layers)

    def hs_blocks(self, hs: np.ndarray) -> np.ndarray | None:
        """The chosen layers of an hs_layers_* matrix as (rows, layers, hidden), unscaled; None
        for the last layer's column, which is read as it is."""
        positions = self.hs_positions
        return None if positions is None else layer_blocks(hs, positions, self.n_layers)

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
    #: Several HS layers: each layer's factor to unit RMS row norm over the fit rows.
    hs_scale: np.ndarray | None = None

    def hs_view(self, hs: np.ndarray) -> np.ndarray:
        """HS as the setting reads it: the last layer's column, or the chosen layers in layer
        order, each scaled by its fitted factor where there are several."""
        blocks = self.setting.hs_blocks(hs)
        if blocks is None:
            return np.asarray(hs, dtype=np.float32)
        if self.hs_scale is not None:
            blocks = blocks * self.hs_scale[None, :, None]
        return np.ascontiguousarray(blocks).reshape(blocks.shape[0], -1)

    def parts(self, *, hs: np.ndarray | None, rw: np.ndarray | None, units: bool = True) -> Parts:
        """The blocks of these rows (raw features in); `units=False` skips the L2-normalised
        ones, which only MoEE-sum reads."""
        hs_z = hs_unit = rw_z = rw_unit = None
        if hs is not None:
            hs = self.hs_view(hs)
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

    Several HS layers are each scaled to unit RMS row norm over the fit rows
    (`combine.hs_features`); the factors are known only at the end of the pass, so HS's column
    statistics are gathered unscaled and scaled after (a mean scales with its column, the sum
    of squared deviations with its square).

    Raises:
        CombineError: the blocks hold no row (a setting that z-scores needs some).
    """
    hs_stats: ColumnStats | None = None
    rw_stats: ColumnStats | None = None
    multi = len(setting.hs_positions or ()) > 1
    zscores = setting.zscore_mode != "none"
    if not zscores and not multi:
        return Standardiser(setting, None, None)
    square_norms: np.ndarray | None = None
    count = 0
    for hs, rw in blocks:
        if hs is not None and hs.shape[0]:
            layered = setting.hs_blocks(hs)
            if layered is not None and multi:
                sums = (layered.astype(np.float64) ** 2).sum(axis=2).sum(axis=0)
                square_norms = sums if square_norms is None else square_norms + sums
                count += layered.shape[0]
            if zscores:
                view = hs if layered is None else layered.reshape(layered.shape[0], -1)
                block = ColumnStats.of(view)
                hs_stats = block if hs_stats is None else hs_stats.merge(block)
        if zscores and rw is not None and rw.shape[0]:
            block = ColumnStats.of(setting.rw_view(rw))
            rw_stats = block if rw_stats is None else rw_stats.merge(block)
    scale = None
    if square_norms is not None:
        scale = layer_scale(square_norms, count)
        if hs_stats is not None:
            hidden = hs_stats.mean.shape[0] // len(scale)
            hs_stats = hs_stats.scaled(np.repeat(scale.astype(np.float64), hidden))
    if zscores and hs_stats is None and rw_stats is None:
        raise CombineError("cannot fit z-score statistics on zero rows")
    return Standardiser(setting, hs_stats, rw_stats, scale)


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
