"""The label-free MoEE-sum weight against an independent brute-force search of its objective."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.stats import spearmanr

from moee_pipeline.score.weights import auto_weight, objective, pair_cosines, sample_pairs
from tests.support.auto_weight import brute_force


def _similarities(seed: int, n: int = 200) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    shared = rng.standard_normal(n)
    s_hs = 0.6 * shared + rng.standard_normal(n) * rng.uniform(0.2, 1.0)
    s_rw = (0.4 * shared + rng.standard_normal(n)) * rng.uniform(0.05, 5.0)  # other scale
    return s_hs, s_rw


@pytest.mark.parametrize("seed", range(3))
def test_auto_weight_matches_a_brute_force_search(seed: int) -> None:
    s_hs, s_rw = _similarities(seed)
    alpha = auto_weight(s_hs, s_rw)
    best_alpha, best_j = brute_force(s_hs, s_rw)
    assert 0.01 <= alpha <= 100
    got = spearmanr(s_hs + alpha * s_rw, s_hs).statistic
    got += spearmanr(s_hs + alpha * s_rw, s_rw).statistic
    assert got == pytest.approx(objective(alpha, s_hs, s_rw), abs=1e-12)
    assert got >= best_j - 1e-3
    # J is a step function: the brute force's smallest best alpha is at most ~2 grid steps
    # (of ours) below ours, never far above
    assert alpha <= best_alpha * 1.03 or got > best_j


def test_auto_weight_is_deterministic_and_scale_aware() -> None:
    s_hs, s_rw = _similarities(7)
    alpha = auto_weight(s_hs, s_rw)
    assert auto_weight(s_hs, s_rw) == alpha
    # scaling s_rw by c moves the optimum to alpha / c: the same best J, up to the tolerance
    scaled = auto_weight(s_hs, 4.0 * s_rw)
    assert objective(scaled, s_hs, 4.0 * s_rw) == pytest.approx(
        objective(alpha, s_hs, s_rw), abs=1e-3
    )


def test_ties_go_to_the_smallest_alpha() -> None:
    s = np.linspace(-1, 1, 50)
    # identical components: every alpha gives the same ranks, so J is flat
    assert auto_weight(s, s) == pytest.approx(0.01)


def test_sample_pairs_distinct_and_seeded() -> None:
    small = sample_pairs(20)
    assert len(small) == 190 and (small[:, 0] < small[:, 1]).all()
    big = sample_pairs(5000, max_pairs=1000)
    assert big.shape == (1000, 2) and (big[:, 0] != big[:, 1]).all()
    assert (big < 5000).all() and np.array_equal(big, sample_pairs(5000, max_pairs=1000))
    assert sample_pairs(1).shape == (0, 2)


def test_pair_cosines() -> None:
    rng = np.random.default_rng(0)
    x = rng.standard_normal((10, 4))
    unit = x / np.linalg.norm(x, axis=1, keepdims=True)
    pairs = np.array([[0, 1], [2, 9]])
    expected = [float(x[a] @ x[b] / np.linalg.norm(x[a]) / np.linalg.norm(x[b])) for a, b in pairs]
    assert pair_cosines(unit, pairs) == pytest.approx(expected)


@pytest.mark.parametrize("bad", [float("nan"), float("inf")])
def test_similarities_that_are_not_numbers_get_no_weight(bad: float) -> None:
    """NaN ranks would make every J NaN and argmax pick the first grid point, 0.01, silently."""
    s_hs, s_rw = _similarities(0)
    s_rw[5] = bad
    with pytest.raises(ValueError, match="not numbers"):
        auto_weight(s_hs, s_rw)
    with pytest.raises(ValueError, match="not numbers"):
        auto_weight(s_rw, s_hs)
