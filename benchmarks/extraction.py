"""Extraction bench: whole processes of `moee extract` and of the reference, per workload.

Each side runs in its own process, timed by the parent from start to exit (imports, task data,
recording the texts, model load, extraction, writing: what a user waiting for the command sees):
- ours, cold: the `moee extract` command into a fresh cache (benchmarks.ours);
- ours, warm: the same again on that cache (features re-extracted, the task snapshot and its
  recorded texts reused), as a second model, prompt or rerun finds it;
- before (optional, `--before REF`): ours as of git REF, exported to the scratch folder, cold;
- the baseline: the reference approach, one pass for one method (benchmarks.baseline); the
  repeats cycle through HS, RW and MoEE. It reads the texts from a JSON file, so it pays neither
  mteb's import nor recording: generous to the reference.
Sides alternate order between repeats; ratios are taken within a repeat, then the median.

Fixed overhead = a process's wall time minus the time its batches ran (the batch loops of ours,
the passes of the reference): process start to first forward, plus every task's bookkeeping.

The paper's grid (HS, RW, MoEE-concat, MoEE-sum at 5 weights: 8 passes for the reference, one
extraction for ours) is measured end to end for the workloads in `--grid-workloads`: one
reference process running all 8 passes. Elsewhere it is extrapolated (labelled so) from one
measured pass: load and imports once, plus 8 passes.
"""

from __future__ import annotations

import json
import logging
import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from benchmarks.common import (
    Workload,
    build_model,
    export_ref,
    median,
    run_worker,
    stage_mix,
)

METHOD_CYCLE = ("HS", "RW", "MoEE")
GRID_PASSES = 8  # HS, RW, MoEE-concat, MoEE-sum x 5 weights
TARGETS = {"one_pass": 3.0, "fixed_overhead_share": 0.10, "padding_efficiency": 0.9}
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


def _ours_numbers(out: dict[str, Any]) -> dict[str, Any]:
    """Whole-process time, where it went, and padding of one run of ours."""
    process = out["process_seconds"]
    timed = out["first_forward_at"] is not None  # older versions do not report their batches
    overhead = process - out["batch_loop_seconds"] if timed else None
    return {
        "process_seconds": process,
        "extract_seconds": out["extract_seconds"],
        "batch_loop_seconds": out["batch_loop_seconds"] if timed else None,
        "to_first_forward_seconds": out["first_forward_at"] - out["spawned_at"] if timed else None,
        "fixed_overhead_seconds": overhead,
        "fixed_overhead_share": overhead / process if overhead is not None else None,
        "real_tokens": out["real_tokens"],
        "padded_tokens": out["padded_tokens"],
        "peak_rss_mb": out["peak_rss_mb"],
    }


def _baseline_numbers(out: dict[str, Any]) -> dict[str, Any]:
    """Whole-process time, where it went, and padding of one reference process."""
    passes = out["passes"]
    process = out["process_seconds"]
    overhead = process - sum(p["seconds"] for p in passes)
    return {
        "process_seconds": process,
        "pass_seconds": passes[0]["seconds"],
        "method": passes[0]["method"],
        "passes": len(passes),
        "load_seconds": out["load_seconds"],
        "to_first_forward_seconds": passes[0]["first_forward_at"] - out["spawned_at"],
        "fixed_overhead_seconds": overhead,
        "fixed_overhead_share": overhead / process,
        "real_tokens": passes[0]["real_tokens"],
        "padded_tokens": passes[0]["padded_tokens"],
        "peak_rss_mb": out["peak_rss_mb"],
    }


def _prepare(workload: Workload, work: Path, data_dir: Path) -> tuple[Path, Path, Path, int]:
    """Stage the mix, build the model, record the texts both sides encode (outside any timing)."""
    folder = work / workload.name
    mix_dir = stage_mix(data_dir, folder / "mix", workload.mix)
    model = build_model(
        data_dir, folder / "model", overrides=workload.model, vocab_size=workload.vocab_size
    )
    texts = collect_texts(mix_dir, list(workload.mix))
    texts_file = folder / "texts.json"
    texts_file.write_text(json.dumps(texts))
    return mix_dir, model, texts_file, sum(len(t) for t in texts.values())


def _run_ours(
    workload: Workload, paths: tuple[Path, Path, Path, int], cache: Path, cwd: Path | None = None
) -> dict[str, Any]:
    """One process of ours (as of `cwd`'s checkout when given) into `cache`."""
    mix_dir, model, texts_file, _ = paths
    args = [
        "--model", str(model), "--tasks", ",".join(workload.mix), "--data-dir", str(mix_dir),
        "--cache-dir", str(cache), "--prompt", workload.prompt, "--texts", str(texts_file),
    ]  # fmt: skip
    return run_worker("benchmarks.ours", args, cwd=cwd)


def _run_baseline(
    workload: Workload, paths: tuple[Path, Path, Path, int], method: str
) -> dict[str, Any]:
    """One process of the reference: load, then one pass of `method`."""
    _, model, texts_file, _ = paths
    args = ["--model", str(model), "--texts", str(texts_file), "--prompt", workload.prompt]
    return run_worker("benchmarks.baseline", [*args, "--method", method])


def workload_bench(
    workload: Workload,
    *,
    work: Path,
    data_dir: Path,
    repeats: int,
    before: str | None = None,
    grid: bool = False,
    grid_passes: int = GRID_PASSES,
) -> dict[str, Any]:
    """Ours (cold, warm, optionally before) and the reference, `repeats` times, alternating."""
    paths = _prepare(workload, work, data_dir)
    _, model, texts_file, n_texts = paths
    before_dir = export_ref(before, work / "before") if before else None
    folder = work / workload.name
    runs: list[dict[str, Any]] = []
    for r in range(repeats):
        method = METHOD_CYCLE[r % len(METHOD_CYCLE)]
        cache = folder / f"cache-{r}"

        shutil.rmtree(cache, ignore_errors=True)
        result: dict[str, Any] = {"repeat": r}
        order = ["ours", "baseline"] if r % 2 == 0 else ["baseline", "ours"]
        if before_dir is not None:
            order.insert(1, "before")
        result["order"] = order
        for side in order:
            if side == "ours":
                result["ours"] = _ours_numbers(_run_ours(workload, paths, cache))
                result["ours_warm"] = _ours_numbers(_run_ours(workload, paths, cache))
            elif side == "before":
                old_cache = folder / f"cache-before-{r}"
                shutil.rmtree(old_cache, ignore_errors=True)
                old = _run_ours(workload, paths, old_cache, cwd=before_dir)
                result["before"] = _ours_numbers(old)
                shutil.rmtree(old_cache, ignore_errors=True)
            else:
                result["baseline"] = _baseline_numbers(_run_baseline(workload, paths, method))
        shutil.rmtree(cache, ignore_errors=True)
        base = result["baseline"]["process_seconds"]
        result["ratio_one_pass"] = base / result["ours"]["process_seconds"]
        result["ratio_one_pass_warm"] = base / result["ours_warm"]["process_seconds"]
        if "before" in result:
            result["before_over_ours"] = (
                result["before"]["process_seconds"] / result["ours"]["process_seconds"]
            )
        print(
            f"  {workload.name} repeat {r}: ours {result['ours']['process_seconds']:.1f} s "
            f"(warm {result['ours_warm']['process_seconds']:.1f} s), baseline[{method}] "
            f"{base:.1f} s, ratio {result['ratio_one_pass']:.2f}x",
            flush=True,
        )
        runs.append(result)
    summary = summarise(workload, runs, n_texts=n_texts, model=model, before=before)
    if grid:
        summary["grid"] = grid_bench(model, texts_file, workload, summary, grid_passes)
    else:
        summary["grid"] = extrapolated_grid(summary)
    return summary


def grid_bench(
    model: Path, texts_file: Path, workload: Workload, summary: dict[str, Any], passes: int
) -> dict[str, Any]:
    """The reference's first `passes` grid passes really run in one process, against ours.

    With all 8 the grid is measured end to end; with fewer, the 8-pass time is extrapolated
    from that measured multi-pass process (its time plus the missing passes at its mean pass).
    """
    args = ["--model", str(model), "--texts", str(texts_file), "--prompt", workload.prompt]
    out = run_worker(
        "benchmarks.baseline", [*args, "--grid", "--passes", str(passes)], timeout=7200
    )
    ours = summary["ours"]["process_seconds_median"]
    seconds = [p["seconds"] for p in out["passes"]]
    estimate = out["process_seconds"] + (GRID_PASSES - len(seconds)) * median(seconds)
    measured = len(seconds) == GRID_PASSES
    result = {
        "kind": "measured" if measured else f"extrapolated from a measured {len(seconds)}-pass run",
        "passes": [p["method"] for p in out["passes"]],
        "pass_seconds": seconds,
        "measured_process_seconds": out["process_seconds"],
        "measured_ratio": out["process_seconds"] / ours,
        "baseline_process_seconds": estimate,
        "ours_process_seconds_median": ours,
        "ratio": estimate / ours,
    }
    print(f"  {workload.name} grid: reference {out['process_seconds']:.1f} s for "
          f"{len(seconds)} passes ({result['measured_ratio']:.1f}x ours); 8 passes: "
          f"{result['ratio']:.1f}x ({result['kind']})", flush=True)  # fmt: skip
    return result


def extrapolated_grid(summary: dict[str, Any]) -> dict[str, Any]:
    """The reference's 8 passes estimated from one: its process once, plus 7 more passes."""
    base = summary["baseline"]
    estimate = base["process_seconds_median"] + (GRID_PASSES - 1) * base["pass_seconds_median"]
    return {
        "kind": "extrapolated from one measured pass",
        "baseline_process_seconds": estimate,
        "ours_process_seconds_median": summary["ours"]["process_seconds_median"],
        "ratio": estimate / summary["ours"]["process_seconds_median"],
    }


def _side_summary(values: list[dict[str, Any]]) -> dict[str, Any]:
    """Medians of every number a side reports; padding from the first run (it is deterministic)."""
    keys = [k for k, v in values[0].items() if isinstance(v, int | float)]
    out: dict[str, Any] = {f"{k}_median": median([v[k] for v in values]) for k in keys}
    out["process_seconds_all"] = [v["process_seconds"] for v in values]
    out["padding_efficiency"] = values[0]["real_tokens"] / values[0]["padded_tokens"]
    return out


def summarise(
    workload: Workload,
    runs: list[dict[str, Any]],
    *,
    n_texts: int,
    model: Path,
    before: str | None,
) -> dict[str, Any]:
    """Medians over repeats; ratios are per repeat (same run), then the median."""
    from transformers import AutoConfig

    vocab = int(AutoConfig.from_pretrained(model).vocab_size)
    sides = ["ours", "ours_warm", "baseline"] + (["before"] if before else [])
    out: dict[str, Any] = {
        "workload": workload.name,
        "about": workload.about,
        "model": {
            **workload.model,
            "vocab_size": vocab,
            "lm_head_share_of_macs": lm_head_share(workload.model, vocab),
        },
        "prompt": workload.prompt,
        "mix": workload.mix,
        "texts": n_texts,
        "repeats": len(runs),
        "before_ref": before,
        **{side: _side_summary([r[side] for r in runs]) for side in sides},
        "ratio_one_pass_median": median([r["ratio_one_pass"] for r in runs]),
        "ratio_one_pass_all": [r["ratio_one_pass"] for r in runs],
        "ratio_one_pass_warm_median": median([r["ratio_one_pass_warm"] for r in runs]),
        "targets": TARGETS,
        "runs": runs,
    }
    if before:
        out["before_over_ours_median"] = median([r["before_over_ours"] for r in runs])
    return out
