"""Device check of real 4-bit: full-depth OLMoE-1B-7B (random weights), nf4 vs bf16, on one GPU.

Builds allenai/OLMoE-1B-7B-0924's architecture (16 layers x 64 experts, its real config) with
random weights on the GPU, saves it in the Hub's key layout, then for each quantization loads
it through the project's `load_model` (what `moee extract` runs) and extracts 2,000 texts with
`extract_task`. Reports torch.cuda.max_memory_allocated after loading and after extracting,
the weight-memory report, tokens per second, and how far nf4 moves the stored last-token
router features from bf16. Expected: nf4 weights under 5 GB.

Run through benchmarks/gpu_model_check.sh (installs the carried bitsandbytes wheel).
"""

from __future__ import annotations

import argparse
import gc
import json
import random
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

_WORD_LINES = (
    "the a of and to in is was for on that with as by it at from his her an be this which or",
    "market model expert router language city river music film team game player school court",
    "data study cell price energy water food health power science history story season night",
    "runs sings falls grows builds writes reads opens closes moves rises wins loses makes finds",
    "quickly slowly very never always often green large small new old early late high low",
    "Berlin Paris Monday question answer summary sentence word meaning reason result system",
)
WORDS = [w for line in _WORD_LINES for w in line.split()]


def make_texts(n: int, seed: int = 0) -> list[str]:
    rng = random.Random(seed)
    texts: set[str] = set()
    while len(texts) < n:
        words = rng.choices(WORDS, k=rng.randint(6, 60))
        texts.add(" ".join(words).capitalize() + rng.choice([".", "?", "!"]))
    return sorted(texts)


def gib(x: float) -> float:
    return round(x / 1024**3, 3)


def read_rw_last(directory: Path) -> dict[str, np.ndarray]:
    import pyarrow.parquet as pq

    from moee_pipeline.cache import parts

    table = pq.ParquetDataset(parts.part_files(directory)).read(columns=["text_id", "rw_last"])
    column = table.column("rw_last").combine_chunks()
    matrix = column.flatten().to_numpy().reshape(-1, column.type.list_size)
    return dict(zip(table.column("text_id").to_pylist(), matrix, strict=True))


class _NoCuda:
    """Stand-in for torch.cuda's memory statistics in a CPU dry run."""

    def __getattr__(self, name: str) -> Callable[..., int]:
        return lambda *a, **k: 0


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results"))
    parser.add_argument("--texts", type=int, default=2000)
    parser.add_argument("--layers", type=int, default=16)
    parser.add_argument("--quantizations", default="nf4,none")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--device", default="cuda", help="cpu: a dry run of the script itself")
    args = parser.parse_args()
    cuda = args.device == "cuda"
    assert torch.cuda.is_available() or not cuda, "needs a CUDA GPU"
    import bitsandbytes
    import transformers

    mem = torch.cuda if cuda else _NoCuda()

    from moee_pipeline.extract.pipeline import extract_task
    from moee_pipeline.extract.settings import ExtractOptions
    from moee_pipeline.models.catalog import build_random_checkpoint
    from moee_pipeline.models.loading import ModelSpec, load_model
    from moee_pipeline.models.memory import format_report
    from moee_pipeline.prompts import resolve_prompt
    from moee_pipeline.testing.tiny import train_tokenizer

    result: dict = {
        "card": torch.cuda.get_device_name(0) if cuda else "cpu (dry run)",
        "gpu_total_gib": gib(torch.cuda.get_device_properties(0).total_memory) if cuda else 0,
        "versions": {
            "torch": torch.__version__,
            "transformers": transformers.__version__,
            "bitsandbytes": bitsandbytes.__version__,
            "python": sys.version.split()[0],
        },
        "texts": args.texts,
        "layers": args.layers,
        "runs": {},
    }
    print(json.dumps(result, indent=2), flush=True)
    texts = make_texts(args.texts)
    root = Path(tempfile.mkdtemp(prefix="moee-gpu-"))
    try:
        start = time.perf_counter()
        checkpoint = root / "olmoe"
        build_random_checkpoint(
            "olmoe", checkpoint, num_hidden_layers=args.layers, device=args.device
        )
        train_tokenizer(checkpoint, texts=texts, vocab_size=4096)
        gc.collect()
        mem.empty_cache()
        result["build_seconds"] = round(time.perf_counter() - start, 1)
        print(f"built and saved in {result['build_seconds']} s", flush=True)
        prompt = resolve_prompt("none")
        features = {}
        for quantization in args.quantizations.split(","):
            gc.collect()
            mem.empty_cache()
            mem.reset_peak_memory_stats()
            start = time.perf_counter()
            loaded = load_model(
                ModelSpec(
                    model=str(checkpoint),
                    quantization=quantization,
                    dtype="bfloat16",
                    device=args.device,
                )
            )
            mem.synchronize()
            load_seconds = time.perf_counter() - start
            after_load = mem.max_memory_allocated()
            allocated = mem.memory_allocated()
            mem.reset_peak_memory_stats()
            cache = root / f"cache-{quantization}"
            options = ExtractOptions(
                cache_dir=cache, batch_size=args.batch_size, max_length=512, progress=False
            )
            summary = extract_task(
                loaded,
                task="GpuModelCheck",
                texts=texts,
                prompt=prompt,
                options=options,
                model_id=f"random-olmoe-{quantization}",
            )
            mem.synchronize()
            run = {
                "load_seconds": round(load_seconds, 1),
                "max_memory_allocated_after_load_gib": gib(after_load),
                "memory_allocated_after_load_gib": gib(allocated),
                "max_memory_allocated_during_extract_gib": gib(mem.max_memory_allocated()),
                "max_memory_allocated_overall_gib": gib(
                    max(after_load, mem.max_memory_allocated())
                ),
                "weight_memory_gib": gib(loaded.info["weight_memory"]["total_bytes"]),
                "weight_memory_by_storage_gib": {
                    k: gib(v) for k, v in loaded.info["weight_memory"]["by_storage"].items()
                },
                "rows": summary.rows,
                "tokens": summary.tokens,
                "extract_seconds": round(summary.seconds, 2),
                "tokens_per_second": round(summary.tokens / summary.seconds, 1),
                "texts_per_second": round(summary.rows / summary.seconds, 1),
            }
            print(format_report(loaded.info["weight_memory"], title=f"olmoe [{quantization}]"))
            print(json.dumps(run, indent=2), flush=True)
            result["runs"][quantization] = run
            features[quantization] = read_rw_last(summary.path)
            del loaded
        if {"nf4", "none"} <= set(features):
            ids = sorted(features["none"])
            ref = np.stack([features["none"][i] for i in ids]).reshape(len(ids), args.layers, -1)
            got = np.stack([features["nf4"][i] for i in ids]).reshape(len(ids), args.layers, -1)
            k = 8
            top_ref = np.argsort(-ref, axis=-1)[..., :k]
            top_got = np.argsort(-got, axis=-1)[..., :k]
            agree = (top_ref[..., :, None] == top_got[..., None, :]).any(-1).mean()
            result["nf4_vs_bf16_last_token_router_logits"] = {
                "mean_abs_diff": float(np.abs(got - ref).mean()),
                "mean_abs": float(np.abs(ref).mean()),
                "top8_agreement": float(agree),
            }
    finally:
        shutil.rmtree(root, ignore_errors=True)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "gpu_model_check.json").write_text(json.dumps(result, indent=2))
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
