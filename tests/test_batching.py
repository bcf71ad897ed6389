from __future__ import annotations

import torch

from moee_pipeline.extract.batching import Encoded, make_batches


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
