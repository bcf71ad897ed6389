"""`moee extract` as users run it: the CLI command, in a process that imports nothing before it.

It runs `moee extract --model DIR --tasks ... --prompt P --data-dir D --cache-dir C --device
cpu --overwrite` through the CLI's own entry point, then reads what the run wrote into the
manifests (rows, tokens, seconds per task, the batch loop's timing and padded tokens) and prints
one JSON line. `--overwrite` re-extracts the features and keeps the task snapshots and recorded
texts: a second run into the same cache is the warm case.
"""

from __future__ import annotations

import argparse
import json
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from benchmarks.common import Timer, peak_gpu_mb, peak_rss_mb


def padded_tokens(
    model_dir: Path, tasks: dict[str, list[str]], prompt_name: str
) -> tuple[int, int]:
    """(real, padded) tokens of the batches `moee extract` forms with its default options.

    Rebuilt after the timed run with the same functions extract_task uses, for versions whose
    manifests do not record padded tokens themselves.
    """
    from transformers import AutoTokenizer

    from moee_pipeline.extract.batching import encode_texts, make_batches
    from moee_pipeline.prompts import resolve_prompt

    try:
        from moee_pipeline.extract.settings import ExtractOptions
    except ImportError:  # versions before extract/settings.py
        from moee_pipeline.extract.pipeline import ExtractOptions

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


def _manifests(args: argparse.Namespace) -> dict[str, dict[str, Any]]:
    from moee_pipeline.cache import layout, store
    from moee_pipeline.prompts import resolve_prompt

    prompt_id = resolve_prompt(args.prompt).id
    found = {}
    for task in args.tasks.split(","):
        folder = layout.task_dir(
            args.cache_dir, model=str(args.model), prompt_id=prompt_id, task=task
        )
        manifest = store.read_manifest(folder)
        if manifest is None:
            raise SystemExit(f"{folder}: no manifest after the run")
        found[task] = manifest
    return found


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
    command = [
        "extract", "--model", str(args.model), "--tasks", args.tasks, "--prompt", args.prompt,
        "--data-dir", str(args.data_dir), "--cache-dir", str(args.cache_dir),
        "--device", args.device, "--overwrite",
    ]  # fmt: skip
    for option in ("dtype", "quantization"):
        if getattr(args, option) is not None:
            command += [f"--{option}", getattr(args, option)]

    from moee_pipeline.cli import main as moee

    with Timer() as wall:
        moee.main(command, standalone_mode=False)
    peak = peak_rss_mb()
    manifests = _manifests(args)
    timings = [t for m in manifests.values() if (t := m.get("timing")) is not None]
    timed = len(timings) == len(manifests)
    first = next(iter(manifests.values()))
    result: dict[str, Any] = {
        "side": "ours",
        "device": first["device"],
        "dtype": first["dtype"],
        "quantization": first["quantization"],
        "peak_gpu_mb": peak_gpu_mb(),
        "wall_seconds": wall.seconds,
        "extract_seconds": sum(m["seconds"] for m in manifests.values()),
        "texts": sum(m["new_rows"] for m in manifests.values()),
        "real_tokens": sum(m["tokens"] for m in manifests.values()),
        "per_task": {t: {"rows": m["rows"], "seconds": m["seconds"]} for t, m in manifests.items()},
        "first_forward_at": min(t["first_forward_at"] for t in timings) if timed else None,
        "batch_loop_seconds": sum(t["batch_loop_seconds"] for t in timings) if timed else 0.0,
        "peak_rss_mb": peak,
    }
    if timed:
        result["padded_tokens"] = sum(t["padded_tokens"] for t in timings)
    elif args.texts is not None:
        real, padded = padded_tokens(args.model, json.loads(args.texts.read_text()), args.prompt)
        result["padded_tokens"] = padded
        result["padding_check_real_tokens"] = real
    print(json.dumps(result))


if __name__ == "__main__":
    main()
