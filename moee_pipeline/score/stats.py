"""Z-score statistics accumulated over row blocks in one streaming pass (float64).

A corpus too large to hold is standardised with statistics gathered block by block: each block's
count, mean and sum of squared deviations (computed in float64 as NumPy's `mean` and `std`
compute them), merged with the next block's by Chan et al.'s pairwise update, which keeps the
precision of a two-pass computation instead of summing squares. One block gives NumPy's
`mean(axis=0)` and `std(axis=0)` bit for bit, so a task held in memory scores exactly as before;
several blocks agree with them to float64 rounding.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np

__all__ = ["ColumnStats", "accumulate"]


@dataclass(frozen=True)
class ColumnStats:
    """Per-column count, mean and sum of squared deviations of the rows seen so far."""

    count: int
    mean: np.ndarray
    m2: np.ndarray

    @classmethod
    def of(cls, block: np.ndarray) -> ColumnStats:
        """The statistics of one (rows, columns) block, in float64 (one float64 copy of the
        block alive, worked on in place: NumPy's own steps, so the same bits)."""
        x = np.array(block, dtype=np.float64)
        mean = x.mean(axis=0)
        x -= mean
        np.multiply(x, x, out=x)
        return cls(int(x.shape[0]), mean, x.sum(axis=0))

    def merge(self, other: ColumnStats) -> ColumnStats:
        """The statistics of both sets of rows (Chan, Golub & LeVeque's update)."""
        if other.count == 0:
            return self
        if self.count == 0:
            return other
        count = self.count + other.count
        delta = other.mean - self.mean
        mean = self.mean + delta * (other.count / count)
        m2 = self.m2 + other.m2 + delta * delta * (self.count * other.count / count)
        return ColumnStats(count, mean, m2)

    def scaled(self, factor: np.ndarray) -> ColumnStats:
        """The statistics of the same rows with each column multiplied by `factor`."""
        return ColumnStats(self.count, self.mean * factor, self.m2 * factor * factor)

    @property
    def std(self) -> np.ndarray:
        """Population standard deviation per column (NumPy's `std`, ddof 0)."""
        return np.sqrt(self.m2 / self.count)

    def apply(self, x: np.ndarray, *, eps: float) -> np.ndarray:
        """(x - mean) / (std + eps) in float64, returned as float32 (in place on one copy)."""
        x64 = np.array(x, dtype=np.float64)
        x64 -= self.mean
        x64 /= self.std + eps
        return x64.astype(np.float32)


def accumulate(blocks: Iterable[np.ndarray]) -> ColumnStats | None:
    """The statistics of every row of `blocks` (None when they hold no row)."""
    total: ColumnStats | None = None
    for block in blocks:
        if block.shape[0] == 0:
            continue
        stats = ColumnStats.of(block)
        total = stats if total is None else total.merge(stats)
    return total
