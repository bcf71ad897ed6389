"""The reference code's extraction, written plainly: what `moee extract` is measured against.

What the MoEE reference code does for every method (and every MoEE-sum weight) of every task:
texts in the order mteb passes them, fixed batches of 128, left padding, one forward pass of the
full causal LM (LM head included) with `output_hidden_states=True` and `output_router_logits=True`,
and the features read from the outputs at the last position. Nothing here is made slower on
purpose: it runs under `torch.inference_mode()` without a KV cache, like a careful user would.

Run as a worker: `python -m benchmarks.baseline --model DIR --texts FILE --method HS`; it prints
one JSON line with the timings and its own peak RSS. `--grid` runs the paper's whole grid in one
process, one pass per method and weight, as the reference code does.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from benchmarks.common import Timer, peak_gpu_mb, peak_rss_mb
from moee_pipeline.prompts import Prompt

METHODS = ("HS", "RW", "MoEE")
#: MoEE-sum weights of the grid (the same five as the scoring bench).
GRID_WEIGHTS = (0.25, 0.5, 1.0, 2.0, 4.0)
#: The paper's grid: HS, RW, MoEE-concat and MoEE-sum at five weights, one pass each.
GRID = (*METHODS, *(f"MoEE-sum@{w:g}" for w in GRID_WEIGHTS))
BATCH_SIZE = 128
IMPORTED_AT = time.time()


@dataclass
class PassStats:
    """What one reference pass over all texts cost."""

    method: str
    seconds: float
    first_forward_at: float
    texts: int
    real_tokens: int
    padded_tokens: int
    dim: int


def _batch_zscore(x: torch.Tensor) -> torch.Tensor:
    """The reference code's standardisation: statistics of the current batch only (quirk 2)."""
    return (x - x.mean(dim=0)) / (x.std(dim=0) + 1e-8)


def _features(output: Any, method: str) -> torch.Tensor:
    """HS / RW / MoEE of one batch, from the full model's outputs at the last position."""
    hs = output.hidden_states[-1][:, -1].float()
    batch = hs.shape[0]
    rw = torch.cat(
        [layer.reshape(batch, -1, layer.shape[-1])[:, -1] for layer in output.router_logits],
        dim=1,
    ).float()
    if method == "HS":
        return hs
    if method == "RW":
        return _batch_zscore(rw)
    if method.startswith("MoEE-sum@"):
        weight = float(method.split("@")[1])
        zhs, zrw = _batch_zscore(hs), _batch_zscore(rw)
        unit_hs = zhs / zhs.norm(dim=1, keepdim=True)
        unit_rw = zrw / zrw.norm(dim=1, keepdim=True)
        return torch.cat([unit_hs, math.sqrt(weight) * unit_rw], dim=1)
    return torch.cat([_batch_zscore(hs), _batch_zscore(rw)], dim=1)


@torch.inference_mode()
def reference_pass(
    model: torch.nn.Module,
    tokenizer: Callable[..., Any],
    tasks: dict[str, list[str]],
    *,
    method: str,
    prompt: Prompt,
    device: torch.device,
) -> tuple[dict[str, np.ndarray], PassStats]:
    """Encode every task's texts once the way the reference code does (batches never span tasks)."""
    features: dict[str, np.ndarray] = {}
    real = padded = 0
    first_forward_at = 0.0
    with Timer() as timer:
        for task, texts in tasks.items():
            chunks: list[np.ndarray] = []
            for start in range(0, len(texts), BATCH_SIZE):
                batch = [prompt.render(t) for t in texts[start : start + BATCH_SIZE]]
                enc = tokenizer(batch, padding=True, return_tensors="pt")
                enc = enc.to(device)
                first_forward_at = first_forward_at or time.time()
                output = model(
                    **enc, output_hidden_states=True, output_router_logits=True, use_cache=False
                )
                chunks.append(_features(output, method).cpu().numpy())
                real += int(enc["attention_mask"].sum())
                padded += int(enc["attention_mask"].numel())
            features[task] = np.concatenate(chunks)
    n_texts = sum(len(t) for t in tasks.values())
    dim = int(next(iter(features.values())).shape[1])
    stats = PassStats(method, timer.seconds, first_forward_at, n_texts, real, padded, dim)
    return features, stats


def load_reference_model(
    model_dir: Path, *, device: str = "cpu", dtype: str = "float32", quantization: str = "none"
) -> tuple[torch.nn.Module, Callable[..., Any]]:
    """The full causal LM (with its LM head) and a left-padding tokenizer.

    `quantization="nf4"` is the reference code's always-on setting: bitsandbytes nf4 with double
    quantization and a bf16 compute dtype, through transformers' own `BitsAndBytesConfig`.
    """
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    tokenizer.padding_side = "left"
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token_id = 0
    kwargs: dict[str, object] = {"dtype": getattr(torch, dtype)}
    if quantization == "nf4":
        from transformers import BitsAndBytesConfig

        kwargs["quantization_config"] = BitsAndBytesConfig(
            load_in_4bit=True,
            bnb_4bit_quant_type="nf4",
            bnb_4bit_use_double_quant=True,
            bnb_4bit_compute_dtype=torch.bfloat16,
        )
        kwargs["device_map"] = {"": device}
    model = AutoModelForCausalLM.from_pretrained(model_dir, **kwargs).eval()
    if quantization == "none":
        model.to(device)
    return model, tokenizer


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--model", type=Path, required=True)
    parser.add_argument("--texts", type=Path, required=True, help="JSON {task: raw texts}")
    parser.add_argument("--prompt", default="prompteol")
    parser.add_argument("--method", action="append", choices=METHODS, default=[])
    parser.add_argument("--grid", action="store_true", help="every method and weight: 8 passes")
    parser.add_argument("--passes", type=int, default=len(GRID), help="with --grid: the first N")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--dtype", default="float32", choices=("float32", "bfloat16"))
    parser.add_argument("--quantization", default="none", choices=("none", "nf4"))
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    methods = list(GRID[: args.passes]) if args.grid else args.method
    if not methods:
        parser.error("give --method or --grid")

    from moee_pipeline.prompts import resolve_prompt

    prompt = resolve_prompt(args.prompt)
    tasks = json.loads(args.texts.read_text())
    device = torch.device(args.device)
    with Timer() as load:
        model, tokenizer = load_reference_model(
            args.model, device=args.device, dtype=args.dtype, quantization=args.quantization
        )
    passes = [
        asdict(reference_pass(model, tokenizer, tasks, method=m, prompt=prompt, device=device)[1])
        for m in methods
    ]
    result = {
        "side": "baseline",
        "device": args.device,
        "dtype": args.dtype,
        "quantization": args.quantization,
        "peak_gpu_mb": peak_gpu_mb(),
        "load_seconds": load.seconds,
        "imported_at": IMPORTED_AT,
        "passes": passes,
        "peak_rss_mb": peak_rss_mb(),
        "threads": torch.get_num_threads(),
    }
    print(json.dumps(result))


if __name__ == "__main__":
    main()
