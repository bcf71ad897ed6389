"""`make bench-gpu`: a random-weight model with the full OLMoE-1B-7B config, ours vs the reference.

One short prepared run for a lent GPU (it has a 15-minute device budget in all): build the
model once on the GPU (bf16, random weights, routers scaled so routing depends on the text),
save it to a scratch folder, then, each in its own process:
- ours, `run_extract` with nf4 (its default on CUDA) and with bf16;
- the baseline (reference approach) with the reference code's nf4 and with bf16.
Reports tokens/s, padding efficiency and peak GPU memory, and writes
benchmarks/results/<date>-<host>-gpu.json.
Texts: the CPU bench's mix scaled up when ../shared/mteb-data exists, else the toy tasks.
"""

from __future__ import annotations

import argparse
import json
import platform
import shutil
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from benchmarks.common import DEFAULT_DATA, REPO, corpus_texts, host_info, run_worker, stage_mix
from moee_pipeline.models.catalog import PAPER_MODELS

GPU_MIX: dict[str, dict[str, int]] = {
    "STS12": {"test": 1000},
    "SICK-R": {"test": 1000},
    "BIOSSES": {"test": 100},
    "EmotionClassification": {"test": 2000, "train": 4000},
    "TweetSentimentExtractionClassification": {"test": 2000, "train": 4000},
}
PROMPT = "prompteol"


def build_full_model(out: Path, data_dir: Path | None) -> Path:
    """Random OLMoE-1B-7B (bf16) initialised on the GPU and saved, with a BPE tokenizer."""
    import torch
    from transformers import AutoModelForCausalLM, PreTrainedTokenizerFast

    from moee_pipeline.testing.tiny import train_tokenizer

    model_dir = out / "olmoe-1b-7b-random"
    if (model_dir / "config.json").exists():
        return model_dir
    texts = list(corpus_texts(data_dir)) if data_dir else None
    tok_dir = out / "tokenizer"
    if texts:
        train_tokenizer(tok_dir, texts=texts, vocab_size=32000)
    else:
        train_tokenizer(tok_dir)
    config = PAPER_MODELS["olmoe"].config()  # the real OLMoE-1B-7B config, random weights
    torch.manual_seed(0)
    with torch.device("cuda"):
        model = AutoModelForCausalLM.from_config(config, dtype=torch.bfloat16)
    with torch.no_grad():
        for name, param in model.named_parameters():
            if name.endswith("gate.weight") and param.dim() == 2 and param.shape[0] > 1:
                param.normal_(0.0, 0.5)
    model.save_pretrained(model_dir)
    PreTrainedTokenizerFast.from_pretrained(tok_dir).save_pretrained(model_dir)
    del model
    torch.cuda.empty_cache()
    return model_dir


def texts_of(tasks: Sequence[str], data_dir: Path | None) -> dict[str, list[str]]:
    """Each task's texts in mteb's order, from the staged data or the toy tasks."""
    from moee_pipeline.tasks import load_task, task_texts

    return {n: task_texts(load_task(n, data_dir=data_dir)) for n in tasks}


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--data-dir", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--work", type=Path, default=Path(tempfile.gettempdir()) / "moee-bench-gpu")
    parser.add_argument("--output", type=Path, default=REPO / "benchmarks" / "results")
    parser.add_argument("--sides", default="ours-nf4,ours-bf16,baseline-bf16,baseline-nf4")
    args = parser.parse_args(argv)
    args.work.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    if args.data_dir.is_dir():
        data_dir: Path | None = stage_mix(args.data_dir, args.work / "mix", GPU_MIX)
        tasks = list(GPU_MIX)
    else:
        from moee_pipeline.testing.toy import TOY_TASKS

        data_dir, tasks = None, list(TOY_TASKS)
        print(f"no {args.data_dir}: using the toy tasks {tasks} (synthetic texts)")
    model = build_full_model(args.work, args.data_dir if data_dir else None)
    print(f"model ready after {time.perf_counter() - started:.0f} s", flush=True)
    texts = texts_of(tasks, data_dir)
    texts_file = args.work / "texts.json"
    texts_file.write_text(json.dumps(texts))

    results: dict[str, Any] = {
        "date": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        **host_info(),
        "model": PAPER_MODELS["olmoe"].hub_config,
        "mix": {t: len(v) for t, v in texts.items()},
        "prompt": PROMPT,
        "sides": {},
    }
    for side in args.sides.split(","):
        who, mode = side.split("-")
        dtype = "bfloat16"
        quant = "nf4" if mode == "nf4" else "none"
        try:
            if who == "ours":
                cache = args.work / f"cache-{mode}"
                shutil.rmtree(cache, ignore_errors=True)
                out = run_worker(
                    "benchmarks.ours",
                    ["--model", str(model), "--tasks", ",".join(tasks), "--cache-dir", str(cache),
                     "--prompt", PROMPT, "--device", "cuda", "--dtype", dtype,
                     "--quantization", quant, "--texts", str(texts_file)]
                    + (["--data-dir", str(data_dir)] if data_dir else []),
                    timeout=900,
                )  # fmt: skip
                seconds, real, padded = (
                    out["extract_seconds"],
                    out["real_tokens"],
                    out["padded_tokens"],
                )
            else:
                out = run_worker(
                    "benchmarks.baseline",
                    ["--model", str(model), "--texts", str(texts_file), "--prompt", PROMPT,
                     "--method", "MoEE", "--device", "cuda", "--dtype", dtype,
                     "--quantization", quant],
                    timeout=900,
                )  # fmt: skip
                p = out["passes"][0]
                seconds, real, padded = p["seconds"], p["real_tokens"], p["padded_tokens"]
        except Exception as error:  # one side failing must not lose the others' numbers
            results["sides"][side] = {"error": str(error)[-2000:]}
            print(f"{side}: FAILED {str(error)[-300:]}", flush=True)
            continue
        results["sides"][side] = {
            "seconds": seconds,
            "real_tokens_per_s": real / seconds,
            "padding_efficiency": real / padded,
            "peak_gpu_mb": out.get("peak_gpu_mb"),
            "peak_rss_mb": out.get("peak_rss_mb"),
            "raw": out,
        }
        print(
            f"{side:14} {seconds:7.1f} s {real / seconds:9.0f} tok/s pad {real / padded:.2f} "
            f"GPU {out.get('peak_gpu_mb') or 0:7.0f} MiB",
            flush=True,
        )
    sides = results["sides"]
    for mode in ("nf4", "bf16"):
        ours, base = sides.get(f"ours-{mode}", {}), sides.get(f"baseline-{mode}", {})
        if "seconds" in ours and "seconds" in base:
            results[f"ratio_one_pass_{mode}"] = base["seconds"] / ours["seconds"]
            results[f"ratio_grid_{mode}"] = 8 * base["seconds"] / ours["seconds"]
            print(f"baseline/ours {mode}: {results[f'ratio_one_pass_{mode}']:.2f}x one pass")
    results["total_seconds"] = time.perf_counter() - started
    args.output.mkdir(parents=True, exist_ok=True)
    path = args.output / f"{time.strftime('%Y-%m-%d')}-{platform.node()}-gpu.json"
    path.write_text(json.dumps(results, indent=2) + "\n")
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
