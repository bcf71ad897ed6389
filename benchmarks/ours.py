"""`moee extract` as users run it, measured in its own process.

It calls `run_extract` with the CLI's default options (the same call `moee extract --model DIR
--tasks ... --prompt P --data-dir D --cache-dir C --device cpu` makes), into a fresh cache dir, and
prints one JSON line: extraction seconds per task (tokenize + forward + Parquet, from the task
summaries), the whole call's wall time (task loading and model load included), when imports were
done and when the first batch went into the model (epoch seconds, for the fixed overhead the
parent computes from the process's start), padding, peak RSS.
"""

from __future__ import annotations

import argparse
import json
import logging
import time
from collections.abc import Sequence
from pathlib import Path

import torch

from benchmarks.common import Timer, peak_gpu_mb, peak_rss_mb

IMPORTED_AT = time.time()


def padded_tokens(
    model_dir: Path, tasks: dict[str, list[str]], prompt_name: str
) -> tuple[int, int]:
    """(real, padded) tokens of the batches `moee extract` forms with its default options.

    Rebuilt after the timed run with the same functions extract_task uses, for versions of
    `run_extract` whose summaries do not count padded tokens themselves.
    """
    from transformers import AutoTokenizer

    from moee_pipeline.extract.batching import encode_texts, make_batches
    from moee_pipeline.extract.settings import ExtractOptions
    from moee_pipeline.prompts import resolve_prompt

    defaults = ExtractOptions(cache_dir=Path())
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    real = padded = 0
    for texts in tasks.values():
        encoded = encode_texts(
            tokenizer, resolve_prompt(prompt_name), texts, max_length=defaults.max_length
        )
        for batch in make_batches(
            encoded,
            pad_id=int(tokenizer.pad_token_id or 0),
            batch_size=defaults.batch_size,
            max_batch_tokens=defaults.max_batch_tokens,
        ):
            real += batch.real_tokens
            padded += int(batch.attention_mask.numel())
    return real, padded


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--model", type=Path, required=True)
    parser.add_argument("--tasks", required=True, help="comma-separated task names")
    parser.add_argument("--data-dir", type=Path, required=True)
    parser.add_argument("--cache-dir", type=Path, required=True)
    parser.add_argument("--prompt", default="prompteol")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--dtype", default=None, help="default: extract's own (per device)")
    parser.add_argument("--quantization", default=None, help="default: extract's own")
    parser.add_argument("--texts", type=Path, help="JSON {task: texts} of the mix (for padding)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)

    from moee_pipeline.extract.run import run_extract
    from moee_pipeline.extract.settings import ExtractOptions
    from moee_pipeline.models.spec import ModelSpec
    from moee_pipeline.prompts import resolve_prompt

    spec = ModelSpec(
        model=str(args.model),
        device=args.device,
        dtype=args.dtype,
        quantization=args.quantization,
    )
    options = ExtractOptions(cache_dir=args.cache_dir, overwrite=True, progress=False)
    with Timer() as wall:
        summaries = list(
            run_extract(
                spec,
                tasks=args.tasks.split(","),
                prompts=[resolve_prompt(args.prompt)],
                options=options,
                data_dir=args.data_dir,
            )
        )
    peak = peak_rss_mb()
    extras = [s.extra for s in summaries]
    forwards = [e["first_forward_at"] for e in extras if e.get("first_forward_at")]
    result = {
        "side": "ours",
        "device": args.device,
        "dtype": spec.resolved_dtype(),
        "quantization": spec.resolved_quantization(),
        "peak_gpu_mb": peak_gpu_mb(),
        "wall_seconds": wall.seconds,
        "extract_seconds": sum(s.seconds for s in summaries),
        "texts": sum(s.new_rows for s in summaries),
        "real_tokens": sum(s.tokens for s in summaries),
        "per_task": {s.task: {"rows": s.rows, "seconds": s.seconds} for s in summaries},
        "imported_at": IMPORTED_AT,
        "first_forward_at": min(forwards) if forwards else None,
        "batch_loop_seconds": sum(e.get("batch_loop_seconds", 0.0) for e in extras),
        "peak_rss_mb": peak,
        "threads": torch.get_num_threads(),
    }
    if extras and all("padded_tokens" in e for e in extras):
        result["padded_tokens"] = sum(e["padded_tokens"] for e in extras)
    elif args.texts is not None:
        real, padded = padded_tokens(args.model, json.loads(args.texts.read_text()), args.prompt)
        result["padded_tokens"] = padded
        result["padding_check_real_tokens"] = real
    print(json.dumps(result))


if __name__ == "__main__":
    main()
