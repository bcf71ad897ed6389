"""The combination math, checked against direct NumPy formulas."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from moee_pipeline.score.combine import (
    Combination,
    Parts,
    embed,
    format_layers,
    l2_normalize,
    parse_layers,
    select_layers,
    softmax_per_layer,
    zscore,
)
from moee_pipeline.score.standardise import prepare_parts

L, E, H, N = 4, 5, 12, 50


@pytest.fixture
def feats() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(7)
    hs = (rng.standard_normal((N, H)) * rng.uniform(0.1, 10, H) + rng.uniform(-5, 5, H)).astype(
        np.float32
    )
    rw = (rng.standard_normal((N, L * E)) * 3 + 1).astype(np.float32)
    return hs, rw


def _z(x: np.ndarray) -> np.ndarray:
    return (x - x.mean(0)) / (x.std(0) + 1e-8)


def _cos(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    a = a / np.linalg.norm(a, axis=1, keepdims=True)
    b = b / np.linalg.norm(b, axis=1, keepdims=True)
    return a @ b.T


def _parts(hs: np.ndarray, rw: np.ndarray, **kw: Any) -> Parts:
    args: dict[str, Any] = {"rw_mode": "logits", "layers": None, "zscore_mode": "auto"} | kw
    return prepare_parts(hs=hs, rw=rw, n_moe_layers=L, n_experts=E, **args)


def test_zscore_population_stats_float32(feats: tuple[np.ndarray, np.ndarray]) -> None:
    hs, _ = feats
    z = zscore(hs)
    assert z.dtype == np.float32
    np.testing.assert_allclose(z, _z(hs.astype(np.float64)), atol=1e-5)
    np.testing.assert_allclose(z.mean(0), 0, atol=1e-5)
    np.testing.assert_allclose(z.std(0), 1, atol=1e-4)
    constant = np.ones((5, 3), np.float32)
    assert np.all(zscore(constant) == 0)  # eps keeps a constant column finite


def test_l2_normalize_keeps_zero_rows() -> None:
    x = np.array([[3, 4], [0, 0]], np.float32)
    np.testing.assert_allclose(l2_normalize(x), [[0.6, 0.8], [0.0, 0.0]])


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        (None, None),
        ("all", None),
        ("0-3", (0, 1, 2, 3)),
        ("0,4,8", (0, 4, 8)),
        ("8, 0-2,2", (0, 1, 2, 8)),
    ],
)
def test_parse_layers(spec: str | None, expected: tuple[int, ...] | None) -> None:
    assert parse_layers(spec) == expected


@pytest.mark.parametrize("spec", ["x", "3-1", "-1", "1-a", "", " ", ","])
def test_parse_layers_rejects(spec: str) -> None:
    with pytest.raises(ValueError, match="layers"):
        parse_layers(spec)


def test_format_layers_round_trip() -> None:
    assert format_layers(None) == "all"
    assert format_layers((0, 1, 2, 5, 7, 8)) == "0-2,5,7-8"
    assert parse_layers(format_layers((0, 1, 2, 5, 7, 8))) == (0, 1, 2, 5, 7, 8)


def test_select_layers_is_layer_major(feats: tuple[np.ndarray, np.ndarray]) -> None:
    _, rw = feats
    out = select_layers(rw, layers=(1, 3), n_moe_layers=L, n_experts=E)
    np.testing.assert_array_equal(out, np.hstack([rw[:, E : 2 * E], rw[:, 3 * E : 4 * E]]))
    with pytest.raises(ValueError, match="out of range"):
        select_layers(rw, layers=(L,), n_moe_layers=L, n_experts=E)
    with pytest.raises(ValueError, match="width"):
        select_layers(rw[:, :-1], layers=None, n_moe_layers=L, n_experts=E)


def test_softmax_per_layer(feats: tuple[np.ndarray, np.ndarray]) -> None:
    _, rw = feats
    p = softmax_per_layer(rw, n_moe_layers=L, n_experts=E)
    cube = p.reshape(N, L, E)
    np.testing.assert_allclose(cube.sum(2), 1, atol=1e-6)
    block = rw[:, 2 * E : 3 * E].astype(np.float64)
    ref = np.exp(block) / np.exp(block).sum(1, keepdims=True)
    np.testing.assert_allclose(cube[:, 2], ref, atol=1e-6)


def test_methods_match_issue_formulas(feats: tuple[np.ndarray, np.ndarray]) -> None:
    hs, rw = feats
    parts = _parts(hs, rw)
    np.testing.assert_array_equal(embed(parts, Combination("HS")), hs)
    np.testing.assert_allclose(embed(parts, Combination("RW")), _z(rw), atol=1e-5)
    concat = embed(parts, Combination("MoEE-concat"))
    np.testing.assert_allclose(concat, np.hstack([_z(hs), _z(rw)]), atol=1e-5)
    hs_all = embed(parts, Combination("HS", zscore="all"))
    np.testing.assert_allclose(hs_all, _z(hs), atol=1e-5)
    none = _parts(hs, rw, zscore_mode="none")
    np.testing.assert_array_equal(embed(none, Combination("RW", zscore="none")), rw)
    for combo in (Combination("MoEE-concat"), Combination("MoEE-sum", weight=0.5)):
        assert embed(parts, combo).dtype == np.float32


@pytest.mark.parametrize("w", [0.0, 0.3, 1.0, 4.0])
def test_sum_dot_product_is_cos_hs_plus_w_cos_rw(
    feats: tuple[np.ndarray, np.ndarray], w: float
) -> None:
    hs, rw = feats
    packed = embed(_parts(hs, rw), Combination("MoEE-sum", weight=w)).astype(np.float64)
    expected = _cos(_z(hs), _z(hs)) + w * _cos(_z(rw), _z(rw))
    np.testing.assert_allclose(packed @ packed.T, expected, atol=1e-5)
    # its cosine is the same sum divided by (1 + w): a monotone map, same rankings
    np.testing.assert_allclose(_cos(packed, packed), expected / (1 + w), atol=1e-5)


def test_sum_with_softmax_and_layers(feats: tuple[np.ndarray, np.ndarray]) -> None:
    hs, rw = feats
    parts = _parts(hs, rw, rw_mode="softmax", layers=(0, 2))
    packed = embed(parts, Combination("MoEE-sum", weight=2.0, rw="softmax", layers=(0, 2)))
    prob = softmax_per_layer(rw, n_moe_layers=L, n_experts=E).reshape(N, L, E)[:, [0, 2]]
    rw_sel = prob.reshape(N, -1).astype(np.float64)
    expected = _cos(_z(hs), _z(hs)) + 2.0 * _cos(_z(rw_sel), _z(rw_sel))
    np.testing.assert_allclose(packed @ packed.T, expected, atol=1e-5)
    assert packed.shape == (N, H + 2 * E)


def test_combination_validation_and_keys() -> None:
    with pytest.raises(ValueError, match="weight"):
        Combination("MoEE-sum")
    with pytest.raises(ValueError, match="weight"):
        Combination("MoEE-sum", weight=-1.0)
    with pytest.raises(ValueError, match="takes no weight"):
        Combination("HS", weight=1.0)
    with pytest.raises(ValueError, match="method"):
        Combination("XX")  # type: ignore[arg-type]
    # HS ignores router options; zscore auto and none both leave HS raw
    assert Combination("HS").effective_key() == Combination("HS", rw="softmax").effective_key()
    assert Combination("HS").effective_key() == Combination("HS", zscore="none").effective_key()
    assert Combination("HS").effective_key() != Combination("HS", zscore="all").effective_key()
    folders = {Combination("MoEE-sum", weight=w, layers=(0, 1, 4)).folder for w in (0.5, 1.0, 2.0)}
    assert len(folders) == 3
    assert all("/" not in f and "," not in f for f in folders)
