"""`make bench`: extraction and scoring speed and memory on the CPU, ours against the reference.

Extraction: a random-weight OLMoE-like model (benchmarks.common.CPU_MODEL) over a fixed mix of
real MTEB texts. Each repeat runs, each in its own process so peak RSS does not mix:
- ours: `run_extract` with the CLI defaults (benchmarks.ours);
- the baseline: the reference approach, one pass for one method (benchmarks.baseline); the repeats
  cycle through HS, RW and MoEE, as the reference code runs one pass per method.
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
import shutil
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from benchmarks.common import (
    CPU_MODEL,
    DEFAULT_DATA,
    EXTRACT_MIX,
    REPO,
    SCORE_TASKS,
    THREADS,
    build_model,
    host_info,
    median,
    run_worker,
    stage_mix,
)

METHOD_CYCLE = ("HS", "RW", "MoEE")
GRID_PASSES = 8  # HS, RW, MoEE-concat, MoEE-sum x 5 weights
PROMPT = "prompteol"
logger = logging.getLogger("benchmarks")


def collect_texts(data_dir: Path, tasks: Sequence[str]) -> dict[str, list[str]]:
    """Each task's texts exactly as mteb asks for them, in mteb's order (what both sides encode)."""
    from moee_pipeline.tasks import load_task, task_texts

    return {name: task_texts(load_task(name, data_dir=data_dir)) for name in tasks}


def lm_head_share(config: dict[str, Any], vocab: int) -> float:
    """Share of the baseline's per-token multiply-adds spent in the LM head ours never computes."""
    h, layers = config["hidden_size"], config["num_hidden_layers"]
    attention = 4 * h * h
    experts = config["num_experts_per_tok"] * 3 * h * config["intermediate_size"]
    router = config["num_experts"] * h
    head = h * vocab
    return head / (layers * (attention + experts + router) + head)


def extraction_bench(work: Path, data_dir: Path, repeats: int) -> dict[str, Any]:
    """Ours and the baseline side by side, `repeats` times, alternating which goes first."""
    mix_dir = stage_mix(data_dir, work / "mix", EXTRACT_MIX)
    model = build_model(data_dir, work / "cpu-model")
    texts = collect_texts(mix_dir, list(EXTRACT_MIX))
    texts_file = work / "mix-texts.json"
    texts_file.write_text(json.dumps(texts))
    runs: list[dict[str, Any]] = []
    for r in range(repeats):
        method = METHOD_CYCLE[r % len(METHOD_CYCLE)]
        cache = work / f"cache-ours-{r}"
        shutil.rmtree(cache, ignore_errors=True)
        ours_args = [
            "--model", str(model), "--tasks", ",".join(EXTRACT_MIX), "--data-dir", str(mix_dir),
            "--cache-dir", str(cache), "--prompt", PROMPT, "--texts", str(texts_file),
        ]  # fmt: skip
        base_args = ["--model", str(model), "--texts", str(texts_file), "--prompt", PROMPT]
        base_args += ["--method", method]
        order = ("ours", "baseline") if r % 2 == 0 else ("baseline", "ours")
        result: dict[str, Any] = {"repeat": r, "order": list(order)}
        for side in order:
            if side == "ours":
                result["ours"] = run_worker("benchmarks.ours", ours_args)
            else:
                result["baseline"] = run_worker("benchmarks.baseline", base_args)
        shutil.rmtree(cache, ignore_errors=True)
        ours_s = result["ours"]["extract_seconds"]
        base_s = result["baseline"]["passes"][0]["seconds"]
        result["ratio_one_pass"] = base_s / ours_s
        result["ratio_grid"] = GRID_PASSES * base_s / ours_s
        print(
            f"  repeat {r}: ours {ours_s:.1f} s, baseline[{method}] {base_s:.1f} s, "
            f"ratio {result['ratio_one_pass']:.2f}x",
            flush=True,
        )
        runs.append(result)
    return summarise_extraction(runs, texts, model)


def summarise_extraction(
    runs: list[dict[str, Any]], texts: dict[str, list[str]], model: Path
) -> dict[str, Any]:
    """Medians over repeats; ratios are per repeat (same run), then the median."""
    from transformers import AutoConfig

    ours = [r["ours"] for r in runs]
    base = [r["baseline"]["passes"][0] for r in runs]
    n_texts = sum(len(t) for t in texts.values())
    ours_s = median([o["extract_seconds"] for o in ours])
    base_s = median([b["seconds"] for b in base])
    ours_real, ours_pad = ours[0]["real_tokens"], ours[0]["padded_tokens"]
    base_real, base_pad = base[0]["real_tokens"], base[0]["padded_tokens"]
    vocab = int(AutoConfig.from_pretrained(model).vocab_size)
    return {
        "model": {
            **CPU_MODEL,
            "vocab_size": vocab,
            "lm_head_share_of_macs": lm_head_share(CPU_MODEL, vocab),
        },
        "prompt": PROMPT,
        "mix": {t: len(v) for t, v in texts.items()},
        "texts": n_texts,
        "repeats": len(runs),
        "grid_passes": GRID_PASSES,
        "ours": {
            "seconds_median": ours_s,
            "seconds_all": [o["extract_seconds"] for o in ours],
            "wall_with_task_and_model_load_median": median([o["wall_seconds"] for o in ours]),
            "texts_per_s": n_texts / ours_s,
            "real_tokens_per_s": ours_real / ours_s,
            "real_tokens": ours_real,
            "padded_tokens": ours_pad,
            "padding_efficiency": ours_real / ours_pad,
            "peak_rss_mb_median": median([o["peak_rss_mb"] for o in ours]),
        },
        "baseline": {
            "seconds_median": base_s,
            "seconds_all": {b["method"]: b["seconds"] for b in base},
            "load_seconds_median": median([r["baseline"]["load_seconds"] for r in runs]),
            "texts_per_s": n_texts / base_s,
            "real_tokens_per_s": base_real / base_s,
            "real_tokens": base_real,
            "padded_tokens": base_pad,
            "padding_efficiency": base_real / base_pad,
            "peak_rss_mb_median": median([r["baseline"]["peak_rss_mb"] for r in runs]),
        },
        "ratio_one_pass_median": median([r["ratio_one_pass"] for r in runs]),
        "ratio_grid_median": median([r["ratio_grid"] for r in runs]),
        "ratio_one_pass_all": [r["ratio_one_pass"] for r in runs],
        "targets": {"one_pass": 2.0, "grid": 8.0},
        "runs": runs,
    }


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


def print_table(results: dict[str, Any]) -> None:
    """The terminal summary."""
    ex = results.get("extraction")
    if ex:
        print(f"\nExtraction on CPU: {ex['texts']} texts, prompt {ex['prompt']}, "
              f"median of {ex['repeats']} runs")  # fmt: skip
        print(f"{'':10} {'s/pass':>8} {'texts/s':>8} {'tok/s':>8} {'pad eff':>8} {'RSS MiB':>8}")
        for side in ("ours", "baseline"):
            s = ex[side]
            print(
                f"{side:10} {s['seconds_median']:8.1f} {s['texts_per_s']:8.1f} "
                f"{s['real_tokens_per_s']:8.0f} {s['padding_efficiency']:8.2f} "
                f"{s['peak_rss_mb_median']:8.0f}"
            )
        one, grid = ex["ratio_one_pass_median"], ex["ratio_grid_median"]
        print(f"baseline/ours, one pass: {one:.2f}x (target >= 2x) "
              f"{'OK' if one >= 2 else 'MISSED'}")  # fmt: skip
        print(f"baseline/ours, grid ({ex['grid_passes']} passes vs 1): {grid:.1f}x "
              f"(target >= 8x) {'OK' if grid >= 8 else 'MISSED'}")  # fmt: skip
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
        results["extraction"] = extraction_bench(args.work, args.data_dir, args.repeats)
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
