"""Scoring bench worker: `moee score` over the 11 real tasks, from a tiny model's cache.

`--prepare` (once, its own process): builds a tiny random OLMoE-like model and extracts every
task into <work>/cache with `run_extract`, so the scoring runs measure scoring only.
A scoring run times `run_score` per task for HS, RW, MoEE-concat and MoEE-sum at five weights,
and prints one JSON line with the per-task and per-type seconds and its own peak RSS.
"""

from __future__ import annotations

import argparse
import json
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from benchmarks.common import SCORE_TASKS, Timer, build_model, peak_rss_mb

#: Five MoEE-sum weights (the paper publishes no per-task values; these span 1/4..4).
WEIGHTS: tuple[float, ...] = (0.25, 0.5, 1.0, 2.0, 4.0)
PROMPT = "none"
#: Small, but with a few layers and experts so RW has a realistic layer-major structure.
TINY_MODEL: dict[str, Any] = {
    "hidden_size": 64,
    "intermediate_size": 128,
    "num_hidden_layers": 4,
    "num_attention_heads": 4,
    "num_key_value_heads": 2,
    "num_experts": 16,
    "num_experts_per_tok": 2,
    "max_position_embeddings": 1024,
}


def prepare(work: Path, data_dir: Path) -> dict[str, Any]:
    """Build the tiny model and extract the 11 tasks once (complete tasks are skipped)."""
    from moee_pipeline.extract.run import run_extract
    from moee_pipeline.extract.settings import ExtractOptions
    from moee_pipeline.models.spec import ModelSpec
    from moee_pipeline.prompts import resolve_prompt

    model = build_model(data_dir, work / "tiny-model", overrides=TINY_MODEL)
    options = ExtractOptions(cache_dir=work / "cache", progress=False)
    spec = ModelSpec(model=str(model), device="cpu")
    with Timer() as timer:
        summaries = list(
            run_extract(
                spec,
                tasks=SCORE_TASKS,
                prompts=[resolve_prompt(PROMPT)],
                options=options,
                data_dir=data_dir,
            )
        )
    return {
        "model": str(model),
        "tiny_model": TINY_MODEL,
        "extract_seconds": timer.seconds,
        "rows": {s.task: s.rows for s in summaries},
        "skipped": all(s.skipped for s in summaries),
    }


def score_run(work: Path, data_dir: Path, run: int) -> dict[str, Any]:
    """Score every task for the whole grid, timing each task separately."""
    from moee_pipeline.score.config import ScoreConfig
    from moee_pipeline.score.run import run_score
    from moee_pipeline.score.sweep import combinations
    from moee_pipeline.tasks import task_type
    from moee_pipeline.vocabulary import METHODS

    model = work / "tiny-model" / "model"
    per_task: dict[str, float] = {}
    per_type: dict[str, float] = {}
    evaluations = 0
    with Timer() as total:
        for name in SCORE_TASKS:
            config = ScoreConfig(
                model=str(model),
                prompts=(PROMPT,),
                tasks=(name,),
                methods=tuple(METHODS),
                weights=WEIGHTS,
                cache_dir=work / "cache",
                data_dir=data_dir,
                output=work / f"results-{run}",
                progress=False,
            )
            evaluations = len(combinations(config))
            with Timer() as timer:
                run_score(config)
            per_task[name] = timer.seconds
            kind = task_type(name)
            per_type[kind] = per_type.get(kind, 0.0) + timer.seconds
    return {
        "seconds": total.seconds,
        "per_task_seconds": per_task,
        "per_type_seconds": per_type,
        "evaluations_per_task": evaluations,
        "peak_rss_mb": peak_rss_mb(),
    }


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--work", type=Path, required=True)
    parser.add_argument("--data-dir", type=Path, required=True)
    parser.add_argument("--prepare", action="store_true")
    parser.add_argument("--run", type=int, default=0)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    if args.prepare:
        result = prepare(args.work, args.data_dir)
    else:
        result = score_run(args.work, args.data_dir, args.run)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
