"""Streaming z-score statistics (`score.stats`) and fitting a setting over chunks
(`score.embedder.fit_setting`), against NumPy's whole-matrix mean and std."""

from __future__ import annotations

import numpy as np
import pytest

from moee_pipeline.cache.source import LoadedFeatures
from moee_pipeline.score.combine import Combination, embed
from moee_pipeline.score.embedder import ConfigRows, fit_setting
from moee_pipeline.score.standardise import prepare_parts
from moee_pipeline.score.stats import ColumnStats, accumulate

L, E, H = 4, 8, 24


def _matrix(rows: int, cols: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    scale, offset = rng.uniform(0.01, 50, cols), rng.uniform(-300, 300, cols)
    return (rng.standard_normal((rows, cols)) * scale + offset).astype(np.float32)


def test_one_block_is_numpys_mean_and_std_bit_for_bit() -> None:
    x = _matrix(997, 33)
    stats = ColumnStats.of(x)
    x64 = x.astype(np.float64)
    assert stats.count == 997
    np.testing.assert_array_equal(stats.mean, x64.mean(axis=0))
    np.testing.assert_array_equal(stats.std, x64.std(axis=0))


@pytest.mark.parametrize("sizes", [[1, 996], [100] * 9 + [97], [1] * 50 + [947], [500, 0, 497]])
def test_blocks_merge_to_numpys_statistics_to_float64_rounding(sizes: list[int]) -> None:
    x = _matrix(997, 33)
    blocks = np.split(x, np.cumsum(sizes)[:-1])
    stats = accumulate(blocks)
    assert stats is not None and stats.count == 997
    x64 = x.astype(np.float64)
    np.testing.assert_allclose(stats.mean, x64.mean(axis=0), rtol=1e-13, atol=1e-12)
    np.testing.assert_allclose(stats.std, x64.std(axis=0), rtol=1e-12)
    z_whole = ((x64 - x64.mean(0)) / (x64.std(0) + 1e-8)).astype(np.float32)
    # float32 z-scores agree to float32 rounding (at most one unit in the last place)
    np.testing.assert_array_max_ulp(stats.apply(x, eps=1e-8), z_whole, maxulp=1)


def test_no_rows_give_no_statistics() -> None:
    assert accumulate([np.zeros((0, 3), np.float32)]) is None


@pytest.mark.parametrize(
    "combo",
    [
        Combination("MoEE-sum", weight=2.0, rw="softmax", layers=(0, 2)),
        Combination("MoEE-concat", pooling="mean"),
        Combination("HS", zscore="all"),
        Combination("RW", zscore="none"),
    ],
)
@pytest.mark.parametrize("chunk_rows", [7, 1000])
def test_a_setting_fitted_over_chunks_embeds_as_the_whole_matrix_does(
    combo: Combination, chunk_rows: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    from moee_pipeline.score import embedder

    monkeypatch.setattr(embedder, "BLOCK_ROWS", 3)  # blocks within each chunk, too
    n = 240
    arrays = {
        "hs_last": _matrix(n, H, 1), "hs_mean": _matrix(n, H, 2),
        "rw_last": _matrix(n, L * E, 3), "rw_mean": _matrix(n, L * E, 4),
    }  # fmt: skip
    manifest = {"n_moe_layers": L, "n_experts": E, "hidden_size": H}
    reader = LoadedFeatures([f"t{i}" for i in range(n)], arrays, manifest)
    fit = np.random.default_rng(5).permutation(n)[:150]  # in the recorded order, not sorted
    standardiser = fit_setting(reader, combo, fit_rows=fit, chunk_rows=chunk_rows)
    rows = ConfigRows(reader, standardiser, combo)
    whole = embed(
        prepare_parts(
            hs=arrays[f"hs_{combo.pooling}"],
            rw=arrays[f"rw_{combo.pooling}"],
            rw_mode=combo.rw,
            layers=combo.layers,
            zscore_mode=combo.zscore,
            n_moe_layers=L,
            n_experts=E,
            fit_rows=fit,
        ),
        combo,
    )
    asked = np.array([5, 3, 3, 239, 0, 120])
    assert rows.dim == whole.shape[1]
    if chunk_rows >= n:  # one chunk: exactly the whole-matrix computation
        np.testing.assert_array_equal(rows.take(asked), whole[asked])
    else:
        np.testing.assert_allclose(rows.take(asked), whole[asked], rtol=2e-6, atol=2e-6)


def test_embedding_in_blocks_changes_no_bit(monkeypatch: pytest.MonkeyPatch) -> None:
    from moee_pipeline.score import embedder

    n = 50
    arrays = {"hs_last": _matrix(n, H, 1), "rw_last": _matrix(n, L * E, 3)}
    manifest = {"n_moe_layers": L, "n_experts": E, "hidden_size": H}
    reader = LoadedFeatures([f"t{i}" for i in range(n)], arrays, manifest)
    combo = Combination("MoEE-sum", weight=0.5)
    rows = ConfigRows(reader, fit_setting(reader, combo, fit_rows=None, chunk_rows=n), combo)
    asked = np.random.default_rng(0).integers(0, n, 33)
    whole = rows.take(asked)
    monkeypatch.setattr(embedder, "BLOCK_ROWS", 4)
    np.testing.assert_array_equal(rows.take(asked), whole)
