from __future__ import annotations

import itertools

import numpy as np
import torch

from moee_pipeline.extract.batching import Encoded, make_batches, plan_batches


def _encoded(lengths: list[int]) -> list[Encoded]:
    return [Encoded(i, list(range(1, n + 1)), False) for i, n in enumerate(lengths)]


def test_batches_are_sorted_left_padded_and_within_budget() -> None:
    lengths = [3, 17, 5, 9, 9, 1, 30, 2, 11]
    batches = list(make_batches(_encoded(lengths), pad_id=0, batch_size=3, max_batch_tokens=40))
    seen = [i for b in batches for i in b.indices]
    assert sorted(seen) == list(range(len(lengths)))
    widths = [b.input_ids.shape[1] for b in batches]
    assert widths == sorted(widths, reverse=True)
    for batch in batches:
        rows, width = batch.input_ids.shape
        assert rows <= 3 and (rows * width <= 40 or rows == 1)
        assert batch.attention_mask[:, -1].all()  # left padding: last column is real
        for row, index in enumerate(batch.indices):
            n = lengths[index]
            assert batch.attention_mask[row].sum() == n
            assert torch.equal(batch.input_ids[row, width - n :], torch.arange(1, n + 1))
    assert sum(b.real_tokens for b in batches) == sum(lengths)


def test_split_repads_each_half() -> None:
    (batch,) = make_batches(_encoded([8, 2, 2, 1]), pad_id=0, batch_size=4, max_batch_tokens=99)
    first, second = batch.split()
    assert first.indices == [0, 1] and second.indices == [2, 3]
    assert first.input_ids.shape == (2, 8) and second.input_ids.shape == (2, 2)
    assert second.real_tokens == 3


def _brute_force_cost(widths: list[int], batch_size: int, budget: int, cost: int) -> float:
    """The cheapest cut of a sorted list into contiguous batches, by trying every cut."""
    best = float("inf")
    n = len(widths)
    for mask in range(2 ** (n - 1)):
        starts = [0] + [i + 1 for i in range(n - 1) if mask >> i & 1]
        total = 0.0
        for start, stop in zip(starts, [*starts[1:], n], strict=True):
            rows, width = stop - start, max(1, widths[start])
            if rows > batch_size or (rows * width > budget and rows > 1):
                total = float("inf")
                break
            total += rows * width + cost
        best = min(best, total)
    return best


def test_plan_batches_is_the_cheapest_cut() -> None:
    rng = np.random.default_rng(0)
    for _ in range(60):
        n = int(rng.integers(1, 10))
        widths = sorted(rng.integers(1, 40, size=n).tolist(), reverse=True)
        batch_size, budget, cost = int(rng.integers(1, 6)), int(rng.integers(20, 120)), 16
        bounds = plan_batches(
            widths, batch_size=batch_size, max_batch_tokens=budget, batch_cost=cost
        )
        assert bounds[0][0] == 0 and bounds[-1][1] == n
        assert all(a[1] == b[0] for a, b in itertools.pairwise(bounds))
        got = sum((stop - start) * max(1, widths[start]) + cost for start, stop in bounds)
        assert got == _brute_force_cost(widths, batch_size, budget, cost)


def test_stray_long_texts_get_their_own_batch() -> None:
    """One long text among many short ones is not allowed to pad them all to its width."""
    lengths = [200] + [10] * 63
    batches = list(
        make_batches(_encoded(lengths), pad_id=0, batch_size=64, max_batch_tokens=1 << 20)
    )
    assert [b.input_ids.shape for b in batches] == [(1, 200), (63, 10)]
