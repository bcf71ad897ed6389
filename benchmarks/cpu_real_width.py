"""Real-width, 2-layer paper models on the CPU: nf4 vs unquantized, through `load_model`.

For each of OLMoE-1B-7B, Qwen1.5-MoE-A2.7B and DeepSeekMoE-16B: random weights with the real
hidden size, expert count and widths but 2 layers, saved in the Hub's key layout (DeepSeek in
its own), loaded through the same `load_model` users run, once with `--quantization none` and
once with `nf4`. Reports weight memory by part and storage type, load time, and how far nf4
moves the router logits: mean absolute difference (all real tokens, and the last-token
features the pipeline stores) and top-k agreement (the model's own k).

Heavy (a few GB of RAM and disk, minutes): not part of the test suite.
    python benchmarks/cpu_real_width.py [--models olmoe,qwen1.5-moe,deepseek-moe]
"""

from __future__ import annotations

import argparse
import json
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

import torch

from moee_pipeline.extract.hooks import RouterCapture, forward_pooled
from moee_pipeline.models.catalog import PAPER_MODELS, build_random_checkpoint
from moee_pipeline.models.loading import LoadedModel, ModelSpec, load_model
from moee_pipeline.testing.tiny import train_tokenizer

TEXTS = [
    "The cat sat on the mat.",
    "A man is playing a guitar on the street.",
    "Markets fell sharply on Monday after the announcement.",
    "How do I reset my card PIN?",
    "The weather is sunny and warm today!",
    "Is this a question or a statement?",
    'She said "hello" to everyone in the room.',
    "Researchers study mixture-of-experts language models.",
    "Two dogs run across a green field.",
    "Summaries should be faithful to the article.",
    "The committee approved the budget for next year.",
    "I can't believe how good this movie was.",
    "Water boils at one hundred degrees Celsius at sea level.",
    "Please send me the report by Friday.",
    "The train to Berlin leaves at nine.",
    "Quantum computers use qubits instead of bits.",
]


def _top_k_agreement(a: torch.Tensor, b: torch.Tensor, k: int) -> float:
    ta = a.topk(k, dim=-1).indices
    tb = b.topk(k, dim=-1).indices
    return (ta.unsqueeze(-1) == tb.unsqueeze(-2)).any(-1).float().mean().item()


def _features(loaded: LoadedModel) -> tuple[torch.Tensor, torch.Tensor]:
    """(router logits of all real tokens (L, N, E), last-token features (B, L, E))."""
    batch = loaded.tokenizer(TEXTS, return_tensors="pt", padding=True)
    with torch.no_grad():
        out = loaded.model(**batch, output_router_logits=True)
    mask = batch.attention_mask.reshape(-1).bool()
    tokens = torch.stack([layer[mask] for layer in out.router_logits]).float()
    with RouterCapture(loaded.routers) as capture:
        pooled = forward_pooled(loaded, capture, batch.input_ids, batch.attention_mask)
    last = torch.from_numpy(pooled.rw_last).view(len(TEXTS), len(loaded.routers), -1)
    return tokens, last


def run_one(alias: str, root: Path, tokenizer_dir: Path) -> dict:
    folder = root / alias
    start = time.perf_counter()
    build_random_checkpoint(alias, folder, num_hidden_layers=2)
    for item in tokenizer_dir.iterdir():
        shutil.copy(item, folder / item.name)
    result: dict = {"model": PAPER_MODELS[alias].model_id, "layers": 2}
    result["build_seconds"] = round(time.perf_counter() - start, 1)
    feats = {}
    for quantization in ("none", "nf4"):
        start = time.perf_counter()
        loaded = load_model(ModelSpec(model=str(folder), quantization=quantization, device="cpu"))
        seconds = time.perf_counter() - start
        report = loaded.info["weight_memory"]
        feats[quantization] = _features(loaded)
        result[quantization] = {
            "load_seconds": round(seconds, 1),
            "weight_memory": report,
            "moe_layers": loaded.moe_layers,
            "n_experts": loaded.n_experts,
            "top_k": int(loaded.model.config.num_experts_per_tok),
        }
        del loaded
    k = result["none"]["top_k"]
    (tok_ref, last_ref), (tok_q, last_q) = feats["none"], feats["nf4"]
    result["comparison"] = {
        "memory_ratio_nf4_over_none": round(
            result["nf4"]["weight_memory"]["total_bytes"]
            / result["none"]["weight_memory"]["total_bytes"],
            4,
        ),
        "tokens": int(tok_ref.shape[1]),
        "logit_mean_abs": round(tok_ref.abs().mean().item(), 5),
        "logit_std": round(tok_ref.std().item(), 5),
        "all_tokens_mean_abs_diff": round((tok_q - tok_ref).abs().mean().item(), 5),
        "all_tokens_top_k_agreement": round(_top_k_agreement(tok_ref, tok_q, k), 4),
        "last_token_mean_abs_diff": round((last_q - last_ref).abs().mean().item(), 5),
        "last_token_top_k_agreement": round(_top_k_agreement(last_ref, last_q, k), 4),
        "k": k,
    }
    shutil.rmtree(folder)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default=",".join(PAPER_MODELS))
    parser.add_argument(
        "--output", type=Path, default=Path("benchmarks/results/cpu_real_width.json")
    )
    args = parser.parse_args()
    torch.set_grad_enabled(False)
    models: dict[str, Any] = {}
    results = {"torch": torch.__version__, "threads": torch.get_num_threads(), "models": models}
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        tokenizer_dir = root / "tokenizer"
        train_tokenizer(tokenizer_dir)
        for alias in args.models.split(","):
            models[alias] = run_one(alias, root, tokenizer_dir)
            print(json.dumps(models[alias]["comparison"], indent=2))
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(results, indent=2))
    print(f"-> {args.output}")


if __name__ == "__main__":
    main()
