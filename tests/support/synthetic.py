"""Synthetic feature caches: the store's layout and part writer, features made from the words.

Scoring tests compute what each method must score straight from these vectors, independently of
the scoring code; no model runs.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from moee_pipeline.cache import layout, parts, store

MODEL = "test-org/tiny-moe"
L, E, H = 3, 4, 16
NL = 4  # decoder layers (the first one dense)
PROMPT = "none"


def _word_vector(word: str, dim: int, salt: str) -> np.ndarray:
    seed = int(hashlib.sha256(f"{salt}:{word}".encode()).hexdigest()[:8], 16)
    return np.random.default_rng(seed).standard_normal(dim)


def synthetic_features(texts: Sequence[str]) -> dict[str, np.ndarray]:
    """Bag-of-words vectors plus an offset, so topics matter and z-scoring changes things."""
    out: dict[str, list[np.ndarray]] = {k: [] for k in parts.VECTOR_COLUMNS}
    for text in texts:
        words = text.lower().replace(".", " ").split()
        for name in parts.VECTOR_COLUMNS:
            dim = L * E if name.startswith("rw") else H
            vec = np.zeros(dim)
            for word in words:
                vec += _word_vector(word, dim, name)
            vec /= max(len(words), 1)
            out[name].append(vec + (3.0 if name.startswith("hs") else 0.5))
    return {k: np.asarray(v, dtype=np.float32) for k, v in out.items()}


def synthetic_layers(
    texts: Sequence[str], arrays: Mapping[str, np.ndarray]
) -> dict[str, np.ndarray]:
    """Every layer's HS (NL layers, layer-major) as `--hs-layers all` stores it: the last block
    is hs_last/hs_mean, the others bag-of-words vectors of their own whose norm grows with
    depth, as pre-norm layer outputs do."""
    out = {}
    for pooling in ("last", "mean"):
        blocks = []
        for layer in range(NL - 1):
            salt = f"hs_layer{layer}_{pooling}"
            rows = [
                np.mean([_word_vector(w, H, salt) for w in t.lower().split()] or [np.zeros(H)], 0)
                for t in texts
            ]
            blocks.append(np.asarray(rows) * 4.0 ** (layer + 1) + 1.0)
        blocks.append(arrays[f"hs_{pooling}"])
        out[f"hs_layers_{pooling}"] = np.hstack(blocks).astype(np.float32)
    return out


def write_synthetic_task(
    cache: Path,
    task: str,
    texts: Sequence[str],
    *,
    prompt: str = PROMPT,
    alike: bool = False,
    hs_layers: bool = False,
    row_group_rows: int = parts.ROW_GROUP_ROWS,
) -> None:
    """One task's features in the store's layout, written with the store's own writer;
    `alike`: every text gets the first one's features, as when every text is the same;
    `hs_layers`: every layer's HS too (`synthetic_layers`), as `--hs-layers all` extracts;
    `row_group_rows`: small ones make chunked reads visible."""
    directory = layout.task_dir(cache, model=MODEL, prompt_id=prompt, task=task)
    directory.mkdir(parents=True, exist_ok=True)
    meta: dict[str, Any] = {
        "model": MODEL, "revision": "r1", "n_moe_layers": L, "n_experts": E, "hidden_size": H,
    }  # fmt: skip
    if hs_layers:
        meta |= {"n_layers": NL, "hs_columns": ["hs_last", "hs_mean", *parts.HS_LAYER_COLUMNS]}
    schema = parts.feature_schema(meta)
    arrays = synthetic_features(list(texts[:1]) * len(texts) if alike else texts)
    if hs_layers:
        arrays |= synthetic_layers(list(texts[:1]) * len(texts) if alike else texts, arrays)
    columns = {
        "text_id": pa.array([parts.text_id(t) for t in texts]),
        "text": pa.array(list(texts)),
        "n_tokens": pa.array([len(t.split()) for t in texts], pa.int32()),
        "truncated": pa.array([False] * len(texts)),
        **{k: parts.vector_array(v) for k, v in arrays.items()},
    }
    table = pa.table(columns, schema=schema)
    parts.write_part(table, directory / "part-00000.parquet", row_group_rows=row_group_rows)
    store.write_json_atomic(directory / store.MANIFEST, {**meta, "rows": len(texts)})


def record_split_texts(root: Path, name: str) -> None:
    """A task snapshot with the texts each split's evaluation encodes, as extraction keeps them."""
    from moee_pipeline.tasks import load_task, split_texts, write_snapshot

    task = load_task(name)
    write_snapshot(task, cache_dir=root)
    split_texts(task, cache_dir=root)
