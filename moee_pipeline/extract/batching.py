"""Prompted texts -> token ids -> length-sorted batches under a token budget.

Sorting by length makes neighbouring texts alike; where the batches are cut is then chosen to
minimise padded tokens plus a fixed cost per forward call (an exact dynamic programme over the
sorted order), so a sparse tail of long texts is not padded to a wide batch. The token budget
keeps the activation memory of a batch bounded whatever the text lengths are.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from transformers import PreTrainedTokenizerBase

from moee_pipeline.prompts import Prompt, encode_prompted


@dataclass(frozen=True)
class Encoded:
    """One text, prompted and tokenized."""

    index: int
    input_ids: list[int]
    truncated: bool


@dataclass(frozen=True)
class Batch:
    """A left-padded batch and the positions of its texts in the task's text list."""

    indices: list[int]
    input_ids: torch.Tensor
    attention_mask: torch.Tensor
    truncated: list[bool]

    @property
    def real_tokens(self) -> int:
        return int(self.attention_mask.sum())

    def split(self) -> tuple[Batch, Batch]:
        """Two halves, each re-padded to its own longest text (used after an out-of-memory)."""
        half = len(self.indices) // 2
        return self._take(slice(0, half)), self._take(slice(half, None))

    def _take(self, rows: slice) -> Batch:
        mask = self.attention_mask[rows]
        width = int(mask.sum(dim=1).max())
        return Batch(
            self.indices[rows],
            self.input_ids[rows, -width:],
            mask[:, -width:],
            self.truncated[rows],
        )


def encode_texts(
    tokenizer: PreTrainedTokenizerBase, prompt: Prompt, texts: Sequence[str], *, max_length: int
) -> list[Encoded]:
    """Prompt and tokenize every text; only over-long ones take the slow truncation path."""
    rendered = [prompt.render(text) for text in texts]
    all_ids = tokenizer(rendered)["input_ids"] if rendered else []
    encoded = []
    for index, ids in enumerate(all_ids):
        if len(ids) > max_length:
            cut = encode_prompted(tokenizer, prompt, texts[index], max_length=max_length)
            encoded.append(Encoded(index, cut.input_ids, cut.truncated))
        else:
            encoded.append(Encoded(index, ids, False))
    return encoded


#: Default fixed cost of one forward call, in padded tokens: a batch is split wherever that
#: saves more padding than this. Small next to a batch (hundreds to thousands of tokens), so
#: batches stay full; large next to the padding of a few stray long texts.
BATCH_COST_TOKENS = 64


def plan_batches(
    widths: Sequence[int], *, batch_size: int, max_batch_tokens: int, batch_cost: int
) -> list[tuple[int, int]]:
    """Cut a list of lengths sorted longest first into batches `[start, stop)`.

    Minimises sum(rows * widest + batch_cost) over all cuts with rows <= batch_size and
    rows * widest <= max_batch_tokens (a single over-budget text is a batch of its own).
    """
    n = len(widths)
    width = np.maximum(np.asarray(widths, dtype=np.int64), 1)
    best = np.zeros(n + 1)
    cut = np.zeros(n + 1, dtype=np.int64)
    for stop in range(1, n + 1):
        starts = np.arange(max(0, stop - batch_size), stop)
        rows = stop - starts
        padded = rows * width[starts]
        cost = best[starts] + padded + batch_cost
        cost[(padded > max_batch_tokens) & (rows > 1)] = np.inf
        k = int(np.argmin(cost))
        best[stop], cut[stop] = cost[k], starts[k]
    bounds = []
    stop = n
    while stop > 0:
        bounds.append((int(cut[stop]), stop))
        stop = int(cut[stop])
    return bounds[::-1]


def make_batches(
    encoded: Sequence[Encoded],
    *,
    pad_id: int,
    batch_size: int,
    max_batch_tokens: int,
    batch_cost: int = BATCH_COST_TOKENS,
) -> Iterator[Batch]:
    """Longest first, so an out-of-memory shows up at once, not after an hour."""
    order = sorted(encoded, key=lambda e: len(e.input_ids), reverse=True)
    bounds = plan_batches(
        [len(e.input_ids) for e in order],
        batch_size=batch_size,
        max_batch_tokens=max_batch_tokens,
        batch_cost=batch_cost,
    )
    for start, stop in bounds:
        group = order[start:stop]
        yield _pad(group, pad_id=pad_id, width=max(1, len(group[0].input_ids)))


def _pad(group: Sequence[Encoded], *, pad_id: int, width: int) -> Batch:
    input_ids = torch.full((len(group), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(group), width), dtype=torch.long)
    for row, item in enumerate(group):
        n = len(item.input_ids)
        if n:
            input_ids[row, width - n :] = torch.tensor(item.input_ids, dtype=torch.long)
            mask[row, width - n :] = 1
    return Batch([e.index for e in group], input_ids, mask, [e.truncated for e in group])
