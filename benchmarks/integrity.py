"""What checking parts against their manifest costs when `moee score` reads them.

Builds one cache entry at OLMoE-1B-7B's real widths (hidden 2048, RW 16 x 64) with bf16-valued
float32 features in parts of 4096 rows, written by the store's own writer, then reads it with
`read_features` (HS + RW, last token, as scoring does) with and without SHA-256 checks,
alternating, and times `moee verify` of the entry. Medians over repeats; the page cache is warm
(the entry was just written), which is the usual case right after `moee extract` or a copy.

    .venv/bin/python -m benchmarks.integrity [--rows 16384] [--repeats 7]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import statistics
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from benchmarks.common import REPO

logger = logging.getLogger(__name__)

HIDDEN, LAYERS, EXPERTS, PART_ROWS = 2048, 16, 64, 4096


def build_entry(cache: Path, rows: int) -> Path:
    """One complete entry written like an extraction writes it: parts, then the manifest."""
    from moee_pipeline.cache import layout, parts, store

    model = "bench/olmoe-widths"
    meta = {"model": model, "prompt_id": "none", "task": "Bench",
            "n_moe_layers": LAYERS, "n_experts": EXPERTS, "hidden_size": HIDDEN}  # fmt: skip
    folder = layout.task_dir(cache, model=model, prompt_id="none", task="Bench")
    folder.mkdir(parents=True)
    schema = parts.feature_schema(meta)
    rng = np.random.default_rng(0)
    records = {}
    for start in range(0, rows, PART_ROWS):
        n = min(PART_ROWS, rows - start)

        def bf16(width: int, n: int = n) -> np.ndarray:
            values = rng.standard_normal((n, width)).astype(np.float32)
            return (values.view(np.uint32) & 0xFFFF0000).view(np.float32)  # bf16-representable

        texts = [f"text {start + i}" for i in range(n)]
        columns = {
            "text_id": pa.array([parts.text_id(t) for t in texts]),
            "text": pa.array(texts),
            "n_tokens": pa.array([12] * n, pa.int32()),
            "truncated": pa.array([False] * n),
            "rw_last": parts.vector_array(bf16(LAYERS * EXPERTS)),
            "rw_mean": parts.vector_array(bf16(LAYERS * EXPERTS)),
            "hs_last": parts.vector_array(bf16(HIDDEN)),
            "hs_mean": parts.vector_array(bf16(HIDDEN)),
        }
        name = f"part-{start // PART_ROWS:05d}.parquet"
        records[name] = parts.write_part(pa.table(columns, schema=schema), folder / name)
    store.write_json_atomic(folder / store.MANIFEST, {**meta, "rows": rows, "parts": records})
    return folder


def measure(rows: int, repeats: int, work: Path) -> dict[str, Any]:
    from moee_pipeline.cache import parts, store, verify

    folder = build_entry(work / "cache", rows)
    size = sum(p.stat().st_size for p in parts.part_files(folder))
    times: dict[str, list[float]] = {"hashed": [], "unhashed": [], "sha256_only": []}
    for i in range(repeats):
        for checked in (True, False) if i % 2 == 0 else (False, True):
            start = time.perf_counter()
            store.read_features(
                work / "cache", model="bench/olmoe-widths", prompt_id="none", task="Bench",
                check_hashes=checked,
            )  # fmt: skip
            times["hashed" if checked else "unhashed"].append(time.perf_counter() - start)
        start = time.perf_counter()
        for part in parts.part_files(folder):
            hashlib.sha256(part.read_bytes()).hexdigest()
        times["sha256_only"].append(time.perf_counter() - start)
    start = time.perf_counter()
    count, problems = verify.verify_entry(folder)
    verify_s = time.perf_counter() - start
    assert not problems and count == len(parts.part_files(folder))
    med = {k: statistics.median(v) for k, v in times.items()}
    return {
        "rows": rows,
        "parts": count,
        "bytes_on_disk": size,
        "median_s": med,
        "hash_overhead_ratio": med["hashed"] / med["unhashed"],
        "sha256_MBps": size / med["sha256_only"] / 1e6,
        "verify_entry_s": verify_s,
        "repeats": repeats,
    }


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=16384)
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    with tempfile.TemporaryDirectory(prefix="moee-bench-integrity-") as work:
        result = measure(args.rows, args.repeats, Path(work))
    out = REPO / "benchmarks" / "results" / "integrity.json"
    out.write_text(json.dumps(result, indent=2) + "\n")
    logger.info("%s\n-> %s", json.dumps(result, indent=2), out)


if __name__ == "__main__":
    main()
