"""Prompted texts -> token ids -> length-sorted batches under a token budget.

Sorting by length makes every batch nearly padding-free; the token budget keeps the
activation memory of a batch bounded whatever the text lengths are.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass

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


def make_batches(
    encoded: Sequence[Encoded], *, pad_id: int, batch_size: int, max_batch_tokens: int
) -> Iterator[Batch]:
    """Longest first, so an out-of-memory shows up at once, not after an hour."""
    order = sorted(encoded, key=lambda e: len(e.input_ids), reverse=True)
    start = 0
    while start < len(order):
        width = max(1, len(order[start].input_ids))
        rows = max(1, min(batch_size, max_batch_tokens // width))
        group = order[start : start + rows]
        yield _pad(group, pad_id=pad_id, width=width)
        start += rows


def _pad(group: Sequence[Encoded], *, pad_id: int, width: int) -> Batch:
    input_ids = torch.full((len(group), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(group), width), dtype=torch.long)
    for row, item in enumerate(group):
        n = len(item.input_ids)
        if n:
            input_ids[row, width - n :] = torch.tensor(item.input_ids, dtype=torch.long)
            mask[row, width - n :] = 1
    return Batch([e.index for e in group], input_ids, mask, [e.truncated for e in group])
