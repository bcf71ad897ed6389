"""`make bench`: extraction and scoring speed and memory on the CPU, ours against the reference.

Extraction (benchmarks.extraction): per workload (benchmarks.common.WORKLOADS: a small model over
~3,000 texts where fixed costs show, a larger one over ~980 texts where the forward dominates),
whole processes of ours and of the reference, each in its own process so peak RSS does not mix.
The paper's grid is HS, RW, MoEE-concat and MoEE-sum at five weights: 8 model passes for the
reference code, 1 extraction for ours (scoring from the cache is the same mteb work on both sides,
so it is timed separately, in the scoring bench).

Scoring: `run_score` for the four methods and five MoEE-sum weights over the 11 real tasks of
../shared/mteb-data, from the cache of a tiny model extracted once into the scratch folder.

Writes benchmarks/results/<date>-<host>.json and prints a table.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from benchmarks.common import (
    DEFAULT_DATA,
    REPO,
    SCORE_TASKS,
    THREADS,
    WORKLOADS,
    host_info,
    median,
    run_worker,
)
from benchmarks.extraction import workload_bench

logger = logging.getLogger("benchmarks")


def scoring_bench(work: Path, data_dir: Path, repeats: int) -> dict[str, Any]:
    """Score the 11 real tasks from a tiny model's cache, `repeats` times, one process each."""
    common = ["--work", str(work / "score"), "--data-dir", str(data_dir)]
    setup = run_worker("benchmarks.scoring", [*common, "--prepare"], timeout=3600)
    print(f"  cache of the tiny model ready ({setup['extract_seconds']:.0f} s)", flush=True)
    runs = [
        run_worker(
            "benchmarks.scoring",
            [*common, "--run", str(r)],
            timeout=3600,
        )
        for r in range(repeats)
    ]
    for r, run in enumerate(runs):
        print(f"  repeat {r}: {run['seconds']:.1f} s, peak RSS {run['peak_rss_mb']:.0f} MiB")
    types = sorted(runs[0]["per_type_seconds"])
    return {
        "tasks": list(SCORE_TASKS),
        "setup": setup,
        "evaluations_per_task": runs[0]["evaluations_per_task"],
        "seconds_median": median([r["seconds"] for r in runs]),
        "seconds_all": [r["seconds"] for r in runs],
        "peak_rss_mb_median": median([r["peak_rss_mb"] for r in runs]),
        "per_type_seconds_median": {
            t: median([r["per_type_seconds"][t] for r in runs]) for t in types
        },
        "per_task_seconds_median": {
            t: median([r["per_task_seconds"][t] for r in runs]) for t in SCORE_TASKS
        },
        "repeats": len(runs),
    }


def _ok(value: float, target: float, *, at_most: bool = False) -> str:
    return "OK" if (value <= target if at_most else value >= target) else "MISSED"


def print_extraction(ex: dict[str, Any]) -> None:
    """One workload's summary on the terminal."""
    print(f"\nExtraction on CPU, {ex['workload']}: {ex['texts']} texts, prompt {ex['prompt']}, "
          f"median of {ex['repeats']} runs, whole processes")  # fmt: skip
    print(
        f"{'':10} {'process s':>9} {'batches s':>9} {'overhead':>8} {'pad eff':>8} {'RSS MiB':>8}"
    )
    for side in ("ours", "ours_warm", "before", "baseline"):
        s = ex.get(side)
        if not s:
            continue
        loop = s.get("batch_loop_seconds_median", s.get("pass_seconds_median", float("nan")))
        share = s.get("fixed_overhead_share_median", float("nan"))
        print(
            f"{side:10} {s['process_seconds_median']:9.1f} {loop:9.1f} "
            f"{share:8.0%} {s['padding_efficiency']:8.2f} {s['peak_rss_mb_median']:8.0f}"
        )
    one, grid = ex["ratio_one_pass_median"], ex["grid"]
    share, pad = ex["ours"]["fixed_overhead_share_median"], ex["ours"]["padding_efficiency"]
    print(f"reference/ours, one pass: {one:.2f}x (target >= 3x) {_ok(one, 3)}; "
          f"warm {ex['ratio_one_pass_warm_median']:.2f}x")  # fmt: skip
    print(f"fixed overhead of ours: {share:.0%} of the process (target <= 10%) "
          f"{_ok(share, 0.1, at_most=True)}")  # fmt: skip
    print(f"padding efficiency of ours: {pad:.2f} (target >= 0.9) {_ok(pad, 0.9)}")
    print(f"reference/ours, grid (8 passes vs 1, {grid['kind']}): {grid['ratio']:.1f}x")


def print_table(results: dict[str, Any]) -> None:
    """The terminal summary."""
    for ex in results.get("extraction", {}).values():
        print_extraction(ex)
    sc = results.get("scoring")
    if sc:
        print(f"\nScoring on CPU: {len(sc['tasks'])} tasks x {sc['evaluations_per_task']} "
              f"evaluations, median of {sc['repeats']} runs")  # fmt: skip
        print(f"total {sc['seconds_median']:.1f} s, peak RSS {sc['peak_rss_mb_median']:.0f} MiB")
        for kind, seconds in sc["per_type_seconds_median"].items():
            print(f"  {kind:16} {seconds:8.1f} s")


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--score-repeats", type=int, default=3)
    parser.add_argument("--data-dir", type=Path, default=DEFAULT_DATA)
    parser.add_argument(
        "--work",
        type=Path,
        default=Path(tempfile.gettempdir()) / "moee-bench",
        help="scratch folder (models, staged data, caches); reused between runs",
    )
    parser.add_argument(
        "--threads",
        type=int,
        default=1,
        help="compute threads per worker (0: one per core); 1 is stable on shared machines",
    )
    parser.add_argument("--only", choices=("extraction", "scoring", "ray"), default=None)
    parser.add_argument("--ray-repeats", type=int, default=2)
    parser.add_argument(
        "--workloads",
        default=",".join(WORKLOADS),
        help=f"comma-separated extraction workloads ({', '.join(WORKLOADS)})",
    )
    parser.add_argument(
        "--grid-workloads",
        default="small-3000",
        help="workloads whose 8-pass reference grid is really run (others: extrapolated)",
    )
    parser.add_argument(
        "--grid-passes",
        type=int,
        default=8,
        help="reference passes really run for the grid (fewer: the rest extrapolated, labelled)",
    )
    parser.add_argument("--before", default=None, help="also time ours as of this git ref")
    parser.add_argument("--output", type=Path, default=REPO / "benchmarks" / "results")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    if not args.data_dir.is_dir():
        raise SystemExit(f"no MTEB data at {args.data_dir}: pass --data-dir")
    args.work.mkdir(parents=True, exist_ok=True)
    THREADS["value"] = args.threads

    results: dict[str, Any] = {
        "date": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        **host_info(),
        "worker_threads": args.threads or "default",
    }
    if args.only in (None, "extraction"):
        print(f"extraction bench ({args.repeats} repeats) ...", flush=True)
        grid = set(args.grid_workloads.split(","))
        results["extraction"] = {
            name: workload_bench(
                WORKLOADS[name],
                work=args.work,
                data_dir=args.data_dir,
                repeats=args.repeats,
                before=args.before,
                grid=name in grid,
                grid_passes=args.grid_passes,
            )
            for name in args.workloads.split(",")
        }
    if args.only in (None, "scoring"):
        print(f"scoring bench ({args.score_repeats} repeats) ...", flush=True)
        results["scoring"] = scoring_bench(args.work, args.data_dir, args.score_repeats)
    if args.only in (None, "ray"):
        from benchmarks.ray_bench import ray_bench

        print(f"ray bench ({args.ray_repeats} repeats) ...", flush=True)
        results["ray"] = ray_bench(args.work, args.data_dir, args.ray_repeats)
    results["load_avg_at_end"] = list(os.getloadavg())
    args.output.mkdir(parents=True, exist_ok=True)
    out = args.output / f"{time.strftime('%Y-%m-%d')}-{platform.node()}.json"
    out.write_text(json.dumps(results, indent=2) + "\n")
    print_table(results)
    if "ray" in results:
        from benchmarks.ray_bench import print_ray

        print_ray(results["ray"])
    print(f"\nwrote {out}")


if __name__ == "__main__":
    main()
