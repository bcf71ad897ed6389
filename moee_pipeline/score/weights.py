"""MoEE-sum's label-free weight: the paper's "optimized adaptively at test time" rule.

The ICLR 2025 paper chooses alpha in sim_HS + alpha * sim_RW without ground-truth labels, by
maximising the Spearman rank correlation between the final similarity and its components. No code
was published; this is our reading of it, on the pairs a split's evaluation compares:

    J(alpha) = rho(s_HS + alpha * s_RW, s_HS) + rho(s_HS + alpha * s_RW, s_RW)

with s_HS, s_RW the cosine similarities of the pairs under the z-scored HS and RW parts (the two
terms MoEE-sum adds) and rho the Spearman correlation. J is a step function of alpha (ranks change
at finitely many alphas), so the search is a fine log grid over [0.01, 100] followed by a bounded
refinement around the best grid point; ties go to the smaller alpha. Nothing here sees a label.
"""

from __future__ import annotations

import numpy as np
from scipy.optimize import minimize_scalar
from scipy.stats import rankdata

ALPHA_MIN = 0.01
ALPHA_MAX = 100.0
GRID_POINTS = 801  # log step 10**(4/800): about 1.2% between neighbours
MAX_PAIRS = 10_000
PAIR_SEED = 0


def _centred_ranks(values: np.ndarray) -> np.ndarray:
    ranks = rankdata(values).astype(np.float64)
    ranks -= ranks.mean()
    norm = np.linalg.norm(ranks)
    return ranks / norm if norm > 0 else ranks


def objective(alpha: float, s_hs: np.ndarray, s_rw: np.ndarray) -> float:
    """J(alpha): Spearman of the combined similarity with each component, summed."""
    combined = _centred_ranks(np.asarray(s_hs, np.float64) + alpha * np.asarray(s_rw, np.float64))
    return float(combined @ _centred_ranks(s_hs) + combined @ _centred_ranks(s_rw))


def auto_weight(s_hs: np.ndarray, s_rw: np.ndarray) -> float:
    """The alpha in [ALPHA_MIN, ALPHA_MAX] maximising `objective`; deterministic.

    Args:
        s_hs: similarity of each pair under the z-scored, normalised HS part.
        s_rw: the same pairs under the z-scored, normalised RW part.
    """
    s_hs = np.asarray(s_hs, dtype=np.float64)
    s_rw = np.asarray(s_rw, dtype=np.float64)
    if s_hs.shape != s_rw.shape or s_hs.ndim != 1 or len(s_hs) < 2:
        raise ValueError(f"need two equal 1-D similarity vectors, got {s_hs.shape}, {s_rw.shape}")
    if not (np.isfinite(s_hs).all() and np.isfinite(s_rw).all()):  # NaN ranks: argmax says 0.01
        raise ValueError("similarities that are not numbers (NaN or inf) have no ranks")
    r_hs, r_rw = _centred_ranks(s_hs), _centred_ranks(s_rw)

    def j(alpha: float) -> float:
        combined = _centred_ranks(s_hs + alpha * s_rw)
        return float(combined @ r_hs + combined @ r_rw)

    grid = np.geomspace(ALPHA_MIN, ALPHA_MAX, GRID_POINTS)
    values = np.array([j(a) for a in grid])
    best = int(np.argmax(values))  # the first maximum: the smallest alpha among ties
    alpha, value = float(grid[best]), float(values[best])
    lo, hi = np.log(grid[max(best - 1, 0)]), np.log(grid[min(best + 1, GRID_POINTS - 1)])
    if hi > lo:
        refined = minimize_scalar(
            lambda x: -j(float(np.exp(x))),
            bounds=(lo, hi),
            method="bounded",
            options={"xatol": 1e-4},
        )
        candidate = float(np.exp(refined.x))
        if -float(refined.fun) > value + 1e-12:
            alpha = candidate
    return alpha


def sample_pairs(n: int, *, max_pairs: int = MAX_PAIRS, seed: int = PAIR_SEED) -> np.ndarray:
    """(pairs, 2) row numbers of distinct items out of n: all pairs if few, else a seeded sample.

    The sample depends only on n, max_pairs and the seed, never on any label.
    """
    if n < 2:
        return np.empty((0, 2), dtype=np.int64)
    if n * (n - 1) // 2 <= max_pairs:
        first, second = np.triu_indices(n, k=1)
        return np.stack([first, second], axis=1).astype(np.int64)
    rng = np.random.default_rng(seed)
    first = rng.integers(0, n, size=max_pairs)
    second = (first + 1 + rng.integers(0, n - 1, size=max_pairs)) % n  # never equal to first
    return np.stack([first, second], axis=1).astype(np.int64)


def pair_cosines(unit: np.ndarray, pairs: np.ndarray) -> np.ndarray:
    """Cosine of each pair of rows of an L2-normalised matrix (float64)."""
    a = np.asarray(unit[pairs[:, 0]], dtype=np.float64)
    b = np.asarray(unit[pairs[:, 1]], dtype=np.float64)
    return np.einsum("ij,ij->i", a, b)
