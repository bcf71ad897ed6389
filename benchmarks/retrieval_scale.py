"""Scoring a retrieval corpus from the cache in bounded memory: peak RSS and time at 50k, 200k and
500k documents of synthetic features at OLMoE-1B-7B's widths.

Per corpus size, in a scratch folder outside the repository (removed after each size):
- prepare (its own process): a retrieval split in the `--data-dir` layout (`<Task>/corpus`,
  `queries`, `qrels`; documents `document <i>`, `--queries` queries each judged relevant to one
  document), loaded as mteb's SciFact task class (Retrieval, nDCG@10, split test: only its
  metadata is SciFact's, the data are these) and snapshotted into a cache as extraction does,
  with the texts its evaluation encodes; features for every text written through the
  extraction's own part writer (`extract.writer.PartWriter`, parts of 4,096 rows, row groups of
  `parts.ROW_GROUP_ROWS`) at RW 16 x 64 = 1,024 and HS 2,048, both poolings, bf16-valued
  float32 as a bf16 extraction stores them, documents in a shuffled order (extraction sorts by
  length, not in corpus order) and queries last, each query near its relevant document;
- score (its own process, so its peak RSS is its own): `run_score` of MoEE-sum (weight 1, HS
  and RW, the widest configuration: 3,072 dims) with `chunk_rows` as given, as `moee score`
  runs it; at the smallest size also with the entry held in memory (chunk_rows above the
  entry's rows: the path of every small task), which must give the same score.

Writes benchmarks/results/<date>-<host>-retrieval.json. See README, "Scoring a large corpus".

    .venv/bin/python -m benchmarks.retrieval_scale [--docs 50000,200000,500000] [--queries 1000]
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import resource
import shutil
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.common import REPO, host_info, run_worker

logger = logging.getLogger("benchmarks")

TASK, MODEL, PROMPT = "SciFact", "bench/olmoe-widths", "none"
LAYERS, EXPERTS, HIDDEN = 16, 64, 2048
PART_ROWS = 4096
WIDTHS = {"rw_last": LAYERS * EXPERTS, "rw_mean": LAYERS * EXPERTS, "hs_last": HIDDEN,
          "hs_mean": HIDDEN}  # fmt: skip


def _bf16(values: np.ndarray) -> np.ndarray:
    """float32 values that bf16 can hold (what a bf16 extraction stores)."""
    return (values.view(np.uint32) & 0xFFFF0000).view(np.float32)


def _write_data(folder: Path, docs: int, queries: int) -> list[int]:
    """The retrieval split files; returns each query's relevant document (corpus index)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    relevant = [j * (docs // queries) for j in range(queries)]
    tables = {
        "corpus": pa.table({"id": [f"d{i}" for i in range(docs)], "title": [""] * docs,
                            "text": [f"document {i}" for i in range(docs)]}),
        "queries": pa.table({"id": [f"q{j}" for j in range(queries)],
                             "text": [f"query {j}" for j in range(queries)]}),
        "qrels": pa.table({"query-id": [f"q{j}" for j in range(queries)],
                           "corpus-id": [f"d{i}" for i in relevant], "score": [1] * queries}),
    }  # fmt: skip
    for part, table in tables.items():
        (folder / TASK / part).mkdir(parents=True)
        pq.write_table(table, folder / TASK / part / "test.parquet")
    return relevant


def prepare(work: Path, docs: int, queries: int) -> dict[str, Any]:
    """Data dir, task snapshot with its encoded texts, and the cache entry of one size."""
    from moee_pipeline.cache import layout, parts, store
    from moee_pipeline.cache.snapshots import write_encoded_texts
    from moee_pipeline.extract.hooks import PooledBatch
    from moee_pipeline.extract.writer import PartWriter
    from moee_pipeline.tasks import load_task, write_snapshot

    start = time.perf_counter()
    cache = work / "cache"
    relevant = _write_data(work / "data", docs, queries)
    task = load_task(TASK, data_dir=work / "data")
    write_snapshot(task, cache_dir=cache)
    doc_texts = [f"document {i}" for i in range(docs)]
    query_texts = [f"query {j}" for j in range(queries)]
    write_encoded_texts(TASK, "test", [*query_texts, *doc_texts], cache_dir=cache)
    meta = {"model": MODEL, "revision": "synthetic", "prompt_id": PROMPT, "task": TASK,
            "n_moe_layers": LAYERS, "n_experts": EXPERTS, "hidden_size": HIDDEN,
            "dtype": "bfloat16"}  # fmt: skip
    folder = layout.task_dir(cache, model=MODEL, prompt_id=PROMPT, task=TASK)
    folder.mkdir(parents=True)
    writer = PartWriter(folder, parts.feature_schema(meta), prefix="part", rows=PART_ROWS)
    rng = np.random.default_rng(0)
    order = rng.permutation(docs)  # storage order differs from corpus order
    wanted = {d: j for j, d in enumerate(relevant)}
    near: dict[str, np.ndarray] = {n: np.empty((queries, w), np.float32) for n, w in WIDTHS.items()}
    for start_row in range(0, docs, PART_ROWS):
        block = order[start_row : start_row + PART_ROWS]
        arrays = {n: _bf16(rng.standard_normal((len(block), w), dtype=np.float32))
                  for n, w in WIDTHS.items()}  # fmt: skip
        for row, doc in enumerate(block):
            if int(doc) in wanted:
                for n in WIDTHS:
                    near[n][wanted[int(doc)]] = arrays[n][row]
        texts = [doc_texts[int(d)] for d in block]
        writer.add(texts, [4] * len(block), [False] * len(block), PooledBatch(**arrays))
    noisy = {n: _bf16(near[n] + 10 * rng.standard_normal(near[n].shape, dtype=np.float32))
             for n in WIDTHS}  # fmt: skip
    writer.add(query_texts, [3] * queries, [False] * queries, PooledBatch(**noisy))
    writer.close()
    rows = docs + queries
    store.write_json_atomic(
        folder / store.MANIFEST, {**meta, "rows": rows, "parts": writer.records}
    )
    size = sum(p.stat().st_size for p in parts.part_files(folder))
    return {"rows": rows, "bytes_on_disk": size, "prepare_seconds": time.perf_counter() - start}


def _rss_mb() -> float:
    """This process's resident memory now, in MiB."""
    resident = int(Path("/proc/self/statm").read_text().split()[1])
    return resident * os.sysconf("SC_PAGE_SIZE") / 2**20


def score(work: Path, chunk_rows: int) -> dict[str, Any]:
    """`run_score` of MoEE-sum (weight 1) on the prepared entry; time and peak RSS."""
    import mteb  # noqa: F401  (imported before the baseline RSS, as the run needs it)

    from moee_pipeline.score.config import ScoreConfig
    from moee_pipeline.score.run import run_score

    before = _rss_mb()
    config = ScoreConfig(
        model=MODEL, prompts=(PROMPT,), tasks=(TASK,), methods=("MoEE-sum",), weights=(1.0,),
        cache_dir=work / "cache", output=work / f"results-{chunk_rows}", progress=False,
        chunk_rows=chunk_rows,
    )  # fmt: skip
    start = time.perf_counter()
    rows = run_score(config)
    seconds = time.perf_counter() - start
    return {
        "chunk_rows": chunk_rows,
        "score_seconds": seconds,
        "main_score": rows[0].score.main_score,
        "rss_after_imports_mb": before,
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }


def measure(work: Path, docs: int, queries: int, chunk_rows: int, *, held: bool) -> dict[str, Any]:
    """Prepare one size, score it (chunked, and held in memory if asked), clean up."""
    folder = work / f"docs-{docs}"
    common = ["--work", str(folder), "--queries", str(queries)]
    try:
        setup = run_worker("benchmarks.retrieval_scale", [*common, "--prepare", str(docs)])
        runs = [run_worker("benchmarks.retrieval_scale", [*common, "--score", str(chunk_rows)])]
        if held:
            whole = str(setup["rows"] + 1)
            runs.append(run_worker("benchmarks.retrieval_scale", [*common, "--score", whole]))
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    for run in runs:
        run["seconds_per_1000_queries"] = run["score_seconds"] / (queries / 1000)
        logger.info(
            "  %s docs, chunk_rows %s: %.1f s, peak RSS %.0f MiB, nDCG@10 %.4f",
            f"{docs:,}", f"{run['chunk_rows']:,}", run["score_seconds"], run["peak_rss_mb"],
            run["main_score"],
        )  # fmt: skip
    return {"docs": docs, "queries": queries, **setup, "runs": runs}


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--docs", default="50000,200000,500000")
    parser.add_argument("--queries", type=int, default=1000)
    parser.add_argument("--chunk-rows", type=int, default=50_000)
    parser.add_argument("--work", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--prepare", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--score", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.prepare is not None:
        print(json.dumps(prepare(args.work, args.prepare, args.queries)))
        return
    if args.score is not None:
        print(json.dumps(score(args.work, args.score)))
        return
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    info = host_info()
    sizes = [int(n) for n in args.docs.split(",")]
    with tempfile.TemporaryDirectory(prefix="moee-bench-retrieval-") as work:
        results = [
            measure(Path(work), n, args.queries, args.chunk_rows, held=n == min(sizes))
            for n in sizes
        ]
    date = time.strftime("%Y-%m-%dT%H:%M:%S")
    data = {"date": date, **info, "load_avg_at_end": list(os.getloadavg()),
            "chunk_rows": args.chunk_rows, "sizes": results}  # fmt: skip
    out = REPO / "benchmarks" / "results" / f"{date[:10]}-{info['host']}-retrieval.json"
    out.write_text(json.dumps(data, indent=2) + "\n")
    logger.info("-> %s", out)


if __name__ == "__main__":
    main()
