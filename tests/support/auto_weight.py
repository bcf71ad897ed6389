"""The independent check of the label-free MoEE-sum weight: a brute-force search of its objective
(score/weights.py searches a coarser grid, then refines), used by the weight and scoring tests."""

from __future__ import annotations

import numpy as np
from scipy.stats import rankdata


def brute_force(s_hs: np.ndarray, s_rw: np.ndarray, points: int = 4001) -> tuple[float, float]:
    """Best (alpha, J) on a very fine log grid: every alpha's ranks at once, Spearman as the
    Pearson correlation of ranks; the first maximum (the smallest alpha) wins ties."""
    alphas = np.geomspace(0.01, 100, points)
    final = rankdata(s_hs[None, :] + alphas[:, None] * s_rw[None, :], axis=1)

    def rho(ranks: np.ndarray, other: np.ndarray) -> np.ndarray:
        a = ranks - ranks.mean(axis=1, keepdims=True)
        b = rankdata(other) - rankdata(other).mean()
        return (a @ b) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b))

    j = rho(final, s_hs) + rho(final, s_rw)
    best = int(np.argmax(j))
    return float(alphas[best]), float(j[best])
