"""The paper's three MoE models: short aliases, their Hub configs, and expected memory.

The configs are copies of the Hub's `config.json` (the fields that shape the weights), so
`moee models` and the memory estimates work offline; benchmarks build random-weight models
of the real widths from them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch

from moee_pipeline.models import deepseek
from moee_pipeline.models.names import MODEL_ALIASES, QUANTIZATIONS, resolve_model

_OLMOE = {
    "model_type": "olmoe",
    "vocab_size": 50304,
    "hidden_size": 2048,
    "intermediate_size": 1024,
    "num_hidden_layers": 16,
    "num_attention_heads": 16,
    "num_key_value_heads": 16,
    "num_experts": 64,
    "num_experts_per_tok": 8,
    "norm_topk_prob": False,
    "max_position_embeddings": 4096,
    "rms_norm_eps": 1e-05,
    "rope_theta": 10000.0,
    "clip_qkv": None,
    "attention_bias": False,
    "tie_word_embeddings": False,
    "pad_token_id": 1,
    "eos_token_id": 50279,
    "torch_dtype": "bfloat16",
}
_QWEN = {
    "model_type": "qwen2_moe",
    "vocab_size": 151936,
    "hidden_size": 2048,
    "intermediate_size": 5632,
    "num_hidden_layers": 24,
    "num_attention_heads": 16,
    "num_key_value_heads": 16,
    "num_experts": 60,
    "num_experts_per_tok": 4,
    "moe_intermediate_size": 1408,
    "shared_expert_intermediate_size": 5632,
    "decoder_sparse_step": 1,
    "norm_topk_prob": False,
    "max_position_embeddings": 8192,
    "max_window_layers": 21,
    "rms_norm_eps": 1e-06,
    "rope_theta": 1000000.0,
    "use_sliding_window": False,
    "tie_word_embeddings": False,
    "bos_token_id": 151643,
    "eos_token_id": 151643,
    "torch_dtype": "bfloat16",
}


@dataclass(frozen=True)
class CatalogModel:
    """One of the paper's models."""

    alias: str
    model_id: str
    hub_config: dict[str, Any] = field(repr=False)
    routing: str

    def config(self, **overrides: Any) -> Any:
        """The transformers config that `moee extract` builds (DeepSeek: mapped to Qwen2Moe)."""
        from transformers import AutoConfig

        raw = {**self.hub_config, **overrides}
        if raw["model_type"] == deepseek.MODEL_TYPE:
            return deepseek.qwen2moe_config(raw)
        fields = {k: v for k, v in raw.items() if k not in ("model_type", "torch_dtype")}
        return AutoConfig.for_model(raw["model_type"], **fields)


__all__ = ["PAPER_MODELS", "CatalogModel", "describe", "format_models", "resolve_model"]

PAPER_MODELS: dict[str, CatalogModel] = {
    m.alias: m
    for m in (
        CatalogModel("olmoe", MODEL_ALIASES["olmoe"], _OLMOE, "top-8 of 64"),
        CatalogModel(
            "qwen1.5-moe",
            MODEL_ALIASES["qwen1.5-moe"],
            _QWEN,
            "top-4 of 60 + 1 gated shared expert",
        ),
        CatalogModel(
            "deepseek-moe",
            MODEL_ALIASES["deepseek-moe"],
            deepseek.deepseek_config(),
            "top-6 of 64 + 2 shared experts; layer 0 dense",
        ),
    )
}


def describe(entry: CatalogModel) -> dict[str, Any]:
    """Layer and expert counts, parameters and expected weight memory of a paper model."""
    from moee_pipeline.models.memory import estimate_weight_memory

    config = entry.config()
    layers = int(config.num_hidden_layers)
    dense = len(getattr(config, "mlp_only_layers", []) or [])
    estimates = {
        q: estimate_weight_memory(config, quantization=q, dtype=torch.bfloat16)
        for q in QUANTIZATIONS
    }
    return {
        "alias": entry.alias,
        "model": entry.model_id,
        "layers": layers,
        "moe_layers": layers - dense,
        "experts": int(config.num_experts),
        "routing": entry.routing,
        "rw_dims": (layers - dense) * int(config.num_experts),
        "hidden_size": int(config.hidden_size),
        "parameters": estimates["none"]["parameters"],
        "weight_bytes": {q: e["total_bytes"] for q, e in estimates.items()},
    }


def format_models(rows: list[dict[str, Any]]) -> str:
    """The table `moee models` prints."""
    from moee_pipeline.units import format_bytes

    header = (
        f"{'alias':<13} {'model':<34} {'MoE layers':>10} {'experts':>7} {'RW dims':>7} "
        f"{'params*':>7} {'nf4':>9} {'int8':>9} {'bf16':>9}  routing"
    )
    lines = [header]
    for r in rows:
        w = r["weight_bytes"]
        lines.append(
            f"{r['alias']:<13} {r['model']:<34} {r['moe_layers']:>4} of {r['layers']:<3} "
            f"{r['experts']:>7} {r['rw_dims']:>7} {r['parameters'] / 1e9:>6.1f}B "
            f"{format_bytes(w['nf4']):>9} {format_bytes(w['int8']):>9} "
            f"{format_bytes(w['none']):>9}  {r['routing']}"
        )
    lines.append(
        "* base model without LM head (never loaded). Memory: weights after loading, "
        "estimated from the config; a GPU also needs ~1.5 GiB plus one layer while running."
    )
    return "\n".join(lines)


def build_random_checkpoint(
    alias: str,
    directory: Any,
    *,
    num_hidden_layers: int | None = None,
    device: str = "cpu",
    seed: int = 0,
) -> Any:
    """Save a random-weight model of a paper model's real widths, in the Hub's key layout.

    For benchmarks: `num_hidden_layers` cuts the depth; weights are bf16; DeepSeekMoE is
    written in its own key layout (`deepseek.write_random_checkpoint`), the others with
    `save_pretrained` (per-expert keys, as on the Hub). Returns the folder.
    """
    from pathlib import Path

    from transformers import AutoModelForCausalLM

    entry = PAPER_MODELS[alias]
    overrides = {} if num_hidden_layers is None else {"num_hidden_layers": num_hidden_layers}
    directory = Path(directory)
    if entry.hub_config["model_type"] == deepseek.MODEL_TYPE:
        config = {**entry.hub_config, **overrides}
        deepseek.write_random_checkpoint(
            directory, config, seed=seed, dtype=torch.bfloat16, router_std=0.02
        )
        return directory
    torch.manual_seed(seed)
    with torch.device(device):
        model = AutoModelForCausalLM.from_config(entry.config(**overrides), dtype=torch.bfloat16)
    model.save_pretrained(directory)
    del model
    return directory
