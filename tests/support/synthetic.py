"""Synthetic feature caches: the store's layout and part writer, features made from the words.

Scoring tests compute what each method must score straight from these vectors, independently of
the scoring code; no model runs.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pyarrow as pa

from moee_pipeline.cache import layout, parts, store

MODEL = "test-org/tiny-moe"
L, E, H = 3, 4, 16
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


def write_synthetic_task(
    cache: Path,
    task: str,
    texts: Sequence[str],
    *,
    prompt: str = PROMPT,
    alike: bool = False,
    row_group_rows: int = parts.ROW_GROUP_ROWS,
) -> None:
    """One task's features in the store's layout, written with the store's own writer;
    `alike`: every text gets the first one's features, as when every text is the same;
    `row_group_rows`: small ones make chunked reads visible."""
    directory = layout.task_dir(cache, model=MODEL, prompt_id=prompt, task=task)
    directory.mkdir(parents=True, exist_ok=True)
    meta = {"model": MODEL, "revision": "r1", "n_moe_layers": L, "n_experts": E, "hidden_size": H}
    schema = parts.feature_schema(meta)
    arrays = synthetic_features(list(texts[:1]) * len(texts) if alike else texts)
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
