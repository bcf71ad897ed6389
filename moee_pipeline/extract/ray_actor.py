"""The two ends of `--engine ray`'s data flow: blocks of token ids out of the driver, the actor that
turns them into pooled features.

A block holds one (task, prompt) pair's texts, longest first, as token ids with their positions
in the pair's plan; the actor cuts it into forward batches under the token budget exactly as the
local engine does and returns the pooled features with the same positions, so the driver can
write each row once, whatever order (or how many times) Ray delivers the blocks.
"""

from __future__ import annotations

import json
from collections.abc import Iterator

import numpy as np
import pyarrow as pa

from moee_pipeline.errors import MoeeError
from moee_pipeline.extract.batching import Encoded, make_batches
from moee_pipeline.extract.entries import TaskPlan
from moee_pipeline.extract.hooks import PooledBatch, RouterCapture
from moee_pipeline.extract.pipeline import forward_resilient
from moee_pipeline.extract.runinfo import run_metadata
from moee_pipeline.models.loading import load_model
from moee_pipeline.models.spec import ModelSpec
from moee_pipeline.prompts import Prompt
from moee_pipeline.vocabulary import HsStore


class FeatureExtractor:
    """A Ray actor's work: load the model once, then pool the features of one block at a time.

    Blocks hold one (task, prompt) pair's token ids, longest first; they are cut into forward
    batches under the token budget exactly as the local engine does.
    """

    def __init__(
        self,
        *,
        spec: ModelSpec,
        pairs: list[tuple[str, Prompt]],
        model_id: str,
        max_length: int,
        batch_size: int,
        max_batch_tokens: int,
        hs_layers: HsStore = "last",
    ) -> None:
        self.loaded = load_model(spec)
        layers = self.loaded.decoder_layers if hs_layers == "all" else ()
        # hooks stay on for the actor's life: it runs nothing but feature extraction
        self.capture = RouterCapture(self.loaded.routers, layers).__enter__()
        self.hs_layers: HsStore = hs_layers
        self.pairs = pairs
        self.model_id = model_id
        self.max_length = max_length
        self.batch_size = batch_size
        self.max_batch_tokens = max_batch_tokens
        self._metadata: dict[int, str] = {}

    def metadata(self, key: int) -> str:
        """The run metadata of a pair, as the local engine records it (JSON)."""
        if key not in self._metadata:
            task, prompt = self.pairs[key]
            meta = run_metadata(
                self.loaded,
                prompt=prompt,
                task=task,
                max_length=self.max_length,
                model_id=self.model_id,
                hs_layers=self.hs_layers,
            )
            self._metadata[key] = json.dumps(meta, sort_keys=True)
        return self._metadata[key]

    def __call__(self, block: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        keys = np.asarray(block["key"])
        if len(set(keys.tolist())) != 1:
            raise MoeeError("a Ray block mixes (task, prompt) pairs; this is a bug")
        positions = np.asarray(block["index"])
        encoded = [
            Encoded(row, np.asarray(ids).tolist(), bool(cut))
            for row, (ids, cut) in enumerate(
                zip(block["input_ids"], block["truncated"], strict=True)
            )
        ]
        batches = make_batches(
            encoded,
            pad_id=int(self.loaded.tokenizer.pad_token_id),
            batch_size=self.batch_size,
            max_batch_tokens=self.max_batch_tokens,
        )
        rows: list[int] = []
        lengths: list[int] = []
        truncated: list[bool] = []
        pooled: list[PooledBatch] = []
        for batch in batches:
            for part, features in forward_resilient(self.loaded, self.capture, batch):
                rows.extend(part.indices)
                lengths.extend(part.attention_mask.sum(dim=1).tolist())
                truncated.extend(part.truncated)
                pooled.append(features)
        out: dict[str, np.ndarray] = {
            "key": keys[rows],
            "index": positions[rows],
            "n_tokens": np.asarray(lengths, dtype=np.int32),
            "truncated": np.asarray(truncated, dtype=bool),
            # the run's metadata travels once per block (the driver needs it for the schema)
            "metadata": np.asarray([self.metadata(int(keys[0]))] + [""] * (len(rows) - 1)),
        }
        for name in pooled[0].arrays():
            out[name] = np.concatenate([p.arrays()[name] for p in pooled])
        return out


def blocks(key: int, plan: TaskPlan, block_rows: int) -> Iterator[pa.Table]:
    """A pair's texts still to extract, longest first, as blocks of token ids."""
    order = sorted(plan.encoded, key=lambda e: len(e.input_ids), reverse=True)
    for start in range(0, len(order), block_rows):
        chunk = order[start : start + block_rows]
        yield pa.table(
            {
                "key": pa.array([key] * len(chunk), pa.int32()),
                "index": pa.array([e.index for e in chunk], pa.int32()),
                "input_ids": pa.array([e.input_ids for e in chunk], pa.list_(pa.int32())),
                "truncated": pa.array([e.truncated for e in chunk], pa.bool_()),
            }
        )
