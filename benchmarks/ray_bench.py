"""Scale-out bench: the Ray engine's overhead at one worker, and scoring with 1 and 2 workers.

Extraction: the extraction bench's model (benchmarks.common.CPU_MODEL) and text mix under three
prompts, once with the local engine and once with `--engine ray --workers 1`, each in its own
process, alternating which goes first. The time is the whole call as a user waits for it: task
loading, Ray start-up (a local instance), actor start and model load included. Goal: the Ray
run takes at most 15% longer.

Scoring: `run_score` over the 11 real tasks of the scoring bench's cache (HS, RW, MoEE-concat,
MoEE-sum x 5 weights), with `--workers 1` (serial) and `--workers 2` (processes).

Worker mode (one JSON line): `python -m benchmarks.ray_bench --engine local|ray ...` or
`--score-workers N ...`.
"""

from __future__ import annotations

import argparse
import json
import logging
import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from benchmarks.common import (
    EXTRACT_MIX,
    SCORE_TASKS,
    Timer,
    build_model,
    median,
    peak_rss_mb,
    run_worker,
    stage_mix,
)

PROMPTS = ("none", "prompteol", "style")
GOAL = 0.15


def extract_once(model: Path, data_dir: Path, cache: Path, engine: str) -> dict[str, Any]:
    """One extraction of the mix under PROMPTS with `engine`, timed end to end."""
    from moee_pipeline.extract.engine import ExtractRequest, RayOptions, engine_named
    from moee_pipeline.extract.settings import ExtractOptions
    from moee_pipeline.models.spec import ModelSpec
    from moee_pipeline.prompts import resolve_prompt

    request = ExtractRequest(
        ModelSpec(model=str(model), device="cpu"),
        tasks=list(EXTRACT_MIX),
        prompts=[resolve_prompt(p) for p in PROMPTS],
        options=ExtractOptions(cache_dir=cache, overwrite=True, progress=False),
        data_dir=data_dir,
    )
    runner = (
        engine_named("ray", RayOptions(workers=1)) if engine == "ray" else engine_named("local")
    )
    with Timer() as wall:
        summaries = list(runner.run(request))
    return {
        "engine": engine,
        "wall_seconds": wall.seconds,
        "texts": sum(s.new_rows for s in summaries),
        "tokens": sum(s.tokens for s in summaries),
        "peak_rss_mb": peak_rss_mb(),
    }


def score_once(work: Path, data_dir: Path, workers: int) -> dict[str, Any]:
    """The scoring bench's grid over every task in one `run_score`, with `workers`."""
    from benchmarks.scoring import PROMPT, WEIGHTS
    from moee_pipeline.score.config import ScoreConfig
    from moee_pipeline.score.run import run_score
    from moee_pipeline.vocabulary import METHODS

    config = ScoreConfig(
        model=str(work / "tiny-model" / "model"),
        prompts=(PROMPT,),
        tasks=SCORE_TASKS,
        methods=tuple(METHODS),
        weights=WEIGHTS,
        cache_dir=work / "cache",
        data_dir=data_dir,
        output=work / f"results-ray-bench-{workers}",
        progress=False,
        workers=workers,
    )
    with Timer() as wall:
        rows = run_score(config)
    return {"workers": workers, "seconds": wall.seconds, "rows": len(rows)}


def ray_bench(work: Path, data_dir: Path, repeats: int) -> dict[str, Any]:
    """Both measurements, `repeats` times each, every run in its own process."""
    mix_dir = stage_mix(data_dir, work / "mix", EXTRACT_MIX)
    model = build_model(data_dir, work / "cpu-model")
    common = ["--model", str(model), "--data-dir", str(mix_dir)]
    runs = []
    for r in range(repeats):
        order = ("local", "ray") if r % 2 == 0 else ("ray", "local")
        result: dict[str, Any] = {"repeat": r, "order": list(order)}
        for engine in order:
            cache = work / f"cache-{engine}"
            shutil.rmtree(cache, ignore_errors=True)
            args = [*common, "--cache-dir", str(cache), "--engine", engine]
            result[engine] = run_worker("benchmarks.ray_bench", args, timeout=3600)
            shutil.rmtree(cache, ignore_errors=True)
        result["overhead"] = result["ray"]["wall_seconds"] / result["local"]["wall_seconds"] - 1
        print(f"  repeat {r}: local {result['local']['wall_seconds']:.1f} s, ray (1 worker) "
              f"{result['ray']['wall_seconds']:.1f} s, overhead {result['overhead']:+.1%}",
              flush=True)  # fmt: skip
        runs.append(result)

    score_args = ["--work", str(work / "score"), "--data-dir", str(data_dir)]
    run_worker("benchmarks.scoring", [*score_args, "--prepare"], timeout=3600)
    scoring: dict[int, list[float]] = {1: [], 2: []}
    for r in range(repeats):
        for workers in (1, 2) if r % 2 == 0 else (2, 1):
            args = [*score_args, "--score-workers", str(workers)]
            scoring[workers].append(
                run_worker("benchmarks.ray_bench", args, timeout=3600)["seconds"]
            )
        print(f"  scoring repeat {r}: 1 worker {scoring[1][-1]:.1f} s, "
              f"2 workers {scoring[2][-1]:.1f} s", flush=True)  # fmt: skip
    return {
        "prompts": list(PROMPTS),
        "mix": {t: sum(s.values()) for t, s in EXTRACT_MIX.items()},
        "extraction_runs": runs,
        "local_seconds_median": median([r["local"]["wall_seconds"] for r in runs]),
        "ray_seconds_median": median([r["ray"]["wall_seconds"] for r in runs]),
        "ray_overhead_median": median([r["overhead"] for r in runs]),
        "ray_overhead_goal": GOAL,
        "scoring_tasks": list(SCORE_TASKS),
        "scoring_seconds": {str(k): v for k, v in scoring.items()},
        "scoring_seconds_median": {str(k): median(v) for k, v in scoring.items()},
        "repeats": repeats,
    }


def print_ray(results: dict[str, Any]) -> None:
    """The terminal summary of `ray_bench`."""
    over = results["ray_overhead_median"]
    print(f"\nRay engine, 1 worker vs local, {len(results['prompts'])} prompts over the mix, "
          f"median of {results['repeats']} runs:")  # fmt: skip
    local, ray = results["local_seconds_median"], results["ray_seconds_median"]
    verdict = "OK" if over <= GOAL else "MISSED"
    print(f"  local {local:.1f} s, ray {ray:.1f} s, overhead {over:+.1%} (goal <= {GOAL:.0%}) "
          f"{verdict}")  # fmt: skip
    s, tasks = results["scoring_seconds_median"], len(results["scoring_tasks"])
    print(f"Scoring, {tasks} tasks: 1 worker {s['1']:.1f} s, 2 workers {s['2']:.1f} s "
          f"({s['1'] / s['2']:.2f}x)")  # fmt: skip


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--model", type=Path)
    parser.add_argument("--data-dir", type=Path, required=True)
    parser.add_argument("--cache-dir", type=Path)
    parser.add_argument("--engine", choices=("local", "ray"))
    parser.add_argument("--work", type=Path)
    parser.add_argument("--score-workers", type=int)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    if args.score_workers:
        result = score_once(args.work, args.data_dir, args.score_workers)
    else:
        result = extract_once(args.model, args.data_dir, args.cache_dir, args.engine)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
