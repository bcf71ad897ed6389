"""What `moee extract --store-dtype` saves on disk and what it changes in the scores.

A tiny random OLMoE-like model (the scoring bench's) extracts the 11 real tasks of
../shared/mteb-data once per store dtype, each into its own cache (float32 first; the others
start from its task snapshots, so they record nothing again), then `run_score` scores every
cache for HS, RW, MoEE-concat and MoEE-sum at a few weights, last-token and mean-pooled. Written
to `benchmarks/results/storage.json`: cache bytes per text (all of features/, text and text id
included) and the vector columns' bytes per value, per dtype, and the largest change of any
main score against float32, naming where. Random weights: the vectors' values are not a trained
model's, so the score changes say how much rounding moves mteb's main scores, not the paper's.

    .venv/bin/python -m benchmarks.storage [--data-dir ../shared/mteb-data] [--work DIR]
"""

from __future__ import annotations

import argparse
import json
import logging
import shutil
import time
from collections.abc import Sequence
from itertools import product
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq

from benchmarks.common import DEFAULT_DATA, REPO, SCORE_TASKS, Timer, build_model, host_info
from benchmarks.scoring import TINY_MODEL
from moee_pipeline.vocabulary import POOLINGS, STORE_DTYPES

logger = logging.getLogger(__name__)

OUT = REPO / "benchmarks" / "results" / "storage.json"
PROMPT = "none"
WEIGHTS: tuple[float, ...] = (0.25, 1.0, 4.0)


def extract(model: Path, cache: Path, data_dir: Path, store: str, compute: str) -> dict[str, Any]:
    """Every task into `cache`, computed in `compute` and stored as `store`; rows and seconds."""
    from moee_pipeline.extract.run import run_extract
    from moee_pipeline.extract.settings import ExtractOptions
    from moee_pipeline.models.spec import ModelSpec
    from moee_pipeline.prompts import resolve_prompt
    from moee_pipeline.vocabulary import STORE_DTYPES

    store_dtype = next(d for d in STORE_DTYPES if d == store)
    options = ExtractOptions(cache_dir=cache, progress=False, store_dtype=store_dtype)
    with Timer() as timer:
        summaries = list(
            run_extract(
                ModelSpec(model=str(model), device="cpu", dtype=compute),
                tasks=SCORE_TASKS,
                prompts=[resolve_prompt(PROMPT)],
                options=options,
                data_dir=data_dir,
            )
        )
    return {"task_rows": {s.task: s.rows for s in summaries}, "extract_seconds": timer.seconds}


def sizes(cache: Path) -> dict[str, Any]:
    """Bytes on disk of every part under features/, and of its vector columns alone."""
    from moee_pipeline.cache.parts import VECTOR_COLUMNS

    total = vectors = values = rows = 0
    for part in sorted((cache / "features").rglob("part-*.parquet")):
        total += part.stat().st_size
        meta = pq.read_metadata(part)
        rows += meta.num_rows
        for group in range(meta.num_row_groups):
            for index in range(meta.num_columns):
                column = meta.row_group(group).column(index)
                if column.path_in_schema.split(".")[0] in VECTOR_COLUMNS:
                    vectors += column.total_compressed_size
                    values += column.num_values
    return {
        "rows": rows,
        "bytes": total,
        "bytes_per_text": total / rows,
        "vector_bytes_per_text": vectors / rows,
        "vector_bytes_per_value": vectors / values,
        "vector_values_per_text": values / rows,
    }


#: What identifies one main score of the grid.
KEY = ("task_type", "task", "method", "pooling", "weight")
KeyT = tuple[str, ...]


def score(model: Path, cache: Path, data_dir: Path, output: Path) -> dict[KeyT, float]:
    """Every main score of the grid, by KEY."""
    from moee_pipeline.cache.scores import read_rows
    from moee_pipeline.score.config import ScoreConfig
    from moee_pipeline.score.run import run_score

    config = ScoreConfig(
        model=str(model),
        prompts=(PROMPT,),
        tasks=SCORE_TASKS,
        weights=WEIGHTS,
        pooling=POOLINGS,
        cache_dir=cache,
        data_dir=data_dir,
        output=output,
        progress=False,
    )
    run_score(config)
    rows = read_rows(output / "scores.csv")
    return {tuple(str(r[k] or "") for k in KEY): float(r["main_score"]) for r in rows}


def changes(scores: dict[KeyT, float], reference: dict[KeyT, float]) -> dict[str, Any]:
    """The largest (where), mean and per-task-type largest change of `scores` from `reference`."""
    if scores.keys() != reference.keys():
        raise SystemExit("two runs scored other evaluations")
    change = {k: abs(v - reference[k]) for k, v in scores.items()}
    worst = max(change, key=lambda k: change[k])
    by_type: dict[str, float] = {}
    for key, value in change.items():
        by_type[key[0]] = max(by_type.get(key[0], 0.0), value)
    return {
        "max_score_change": change[worst],
        "max_score_change_at": dict(zip(KEY, worst, strict=True)),
        "mean_score_change": sum(change.values()) / len(change),
        "max_score_change_by_type": by_type,
    }


def measure(data_dir: Path, work: Path) -> dict[str, Any]:
    """Each store dtype of a float32 model against float32 storage; then, as the GPU default
    computes, a bfloat16 model stored as bfloat16 against the same stored as float32, and what
    computing in bfloat16 itself changes (the scale of noise the paper's numbers carry)."""
    model = build_model(data_dir, work / "tiny-model", overrides=TINY_MODEL)
    plan: list[tuple[str, str]] = list(product(("float32",), STORE_DTYPES))
    plan += [("bfloat16", "float32"), ("bfloat16", "bfloat16")]
    runs: dict[tuple[str, str], dict[str, Any]] = {}
    scores: dict[tuple[str, str], dict[KeyT, float]] = {}
    first = work / "cache-float32-float32"
    for compute, store in plan:  # the first run's task snapshots serve the others
        name = f"{compute}-{store}"
        cache = work / f"cache-{name}"
        shutil.rmtree(cache, ignore_errors=True)
        if cache != first:
            shutil.copytree(first / "tasks", cache / "tasks")
        run = {**extract(model, cache, data_dir, store, compute), **sizes(cache)}
        output = work / f"results-{name}"
        shutil.rmtree(output, ignore_errors=True)
        with Timer() as timer:
            scores[compute, store] = score(model, cache, data_dir, output)
        runs[compute, store] = {**run, "score_seconds": timer.seconds}
        logger.info("%s: %s", name, json.dumps(runs[compute, store]))
    base = runs["float32", "float32"]
    for (compute, stored), run in runs.items():
        run["size_vs_float32"] = run["bytes"] / base["bytes"]
        run.update(changes(scores[compute, stored], scores[compute, "float32"]))
    compute_noise = changes(scores["bfloat16", "float32"], scores["float32", "float32"])
    return {
        "date": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        **host_info(),
        "tiny_model": TINY_MODEL,
        "tasks": list(SCORE_TASKS),
        "prompt": PROMPT,
        "weights": list(WEIGHTS),
        "poolings": list(POOLINGS),
        "evaluations": len(scores["float32", "float32"]),
        "dtypes": {s: r for (c, s), r in runs.items() if c == "float32"},
        "bfloat16_compute": {
            "dtypes": {s: r for (c, s), r in runs.items() if c == "bfloat16"},
            "compute_change": compute_noise,
        },
    }


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--work", type=Path, default=None, help="default: $TMPDIR/moee-bench")
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(message)s")
    logger.setLevel(logging.INFO)  # this bench's lines, not every library's
    import tempfile

    work = args.work or Path(tempfile.gettempdir()) / "moee-bench" / "storage"
    work.mkdir(parents=True, exist_ok=True)
    result = measure(args.data_dir, work)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    logger.info("-> %s", args.out)


if __name__ == "__main__":
    main()
