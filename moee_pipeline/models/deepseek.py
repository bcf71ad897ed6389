"""DeepSeekMoE (model_type `deepseek`, e.g. deepseek-moe-16b-base) without remote code.

Its Hub modeling code targets transformers 4.36 and does not import on transformers 5, but
the architecture is exactly transformers' Qwen2Moe with:
- `qkv_bias=False` (plain multi-head attention, Llama rotary embeddings);
- `mlp_only_layers = range(first_k_dense_replace)` (layer 0 is a dense MLP);
- `norm_topk_prob=False`: top-k of the softmax over all routed experts, not renormalized;
- one shared expert of width `n_shared_experts * moe_intermediate_size` (DeepSeek's shared
  experts are one MLP of that width), added with weight 1: Qwen2Moe scales it by
  `sigmoid(shared_expert_gate(x))`, so that gate's weight is set to 0 (sigmoid = 0.5) and
  the shared expert's `down_proj` is doubled (exact: a power of two);
- checkpoint keys `mlp.shared_experts.*` renamed `mlp.shared_expert.*`; the per-expert
  keys are the Hub layout transformers already fuses for Qwen2Moe.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from moee_pipeline.errors import MoeeError

MODEL_TYPE = "deepseek"
KEY_MAPPING = {r"mlp\.shared_experts\.": "mlp.shared_expert."}


class UnsupportedDeepSeekConfig(MoeeError, ValueError):
    """A DeepSeek config this mapping cannot express exactly."""


def _rope_parameters(config: dict[str, Any]) -> dict[str, Any]:
    theta = float(config.get("rope_theta", 10000.0))
    scaling = config.get("rope_scaling")
    if not scaling:
        return {"rope_type": "default", "rope_theta": theta}
    kind = scaling.get("rope_type", scaling.get("type"))
    if kind not in ("linear", "dynamic"):
        raise UnsupportedDeepSeekConfig(f"rope_scaling {scaling!r} is not supported")
    return {"rope_type": kind, "factor": float(scaling["factor"]), "rope_theta": theta}


def qwen2moe_config(config: dict[str, Any]) -> Any:
    """The Qwen2MoeConfig that computes exactly what a DeepSeekMoE config.json describes.

    Raises:
        UnsupportedDeepSeekConfig: a setting without an exact Qwen2Moe equivalent.
    """
    from transformers import Qwen2MoeConfig

    if config.get("model_type") != MODEL_TYPE:
        raise UnsupportedDeepSeekConfig(f"not a DeepSeekMoE config: {config.get('model_type')!r}")
    checks = {
        "scoring_func": (config.get("scoring_func", "softmax"), "softmax"),
        "moe_layer_freq": (config.get("moe_layer_freq", 1), 1),
        "attention_bias": (bool(config.get("attention_bias", False)), False),
        "pretraining_tp": (config.get("pretraining_tp", 1), 1),
    }
    for key, (value, wanted) in checks.items():
        if value != wanted:
            raise UnsupportedDeepSeekConfig(f"{key}={value!r} (only {wanted!r} is supported)")
    n_shared = config.get("n_shared_experts") or 0
    if n_shared < 1 or not config.get("n_routed_experts"):
        raise UnsupportedDeepSeekConfig("need routed and shared experts (n_shared_experts >= 1)")
    layers = int(config["num_hidden_layers"])
    first_dense = int(config.get("first_k_dense_replace", 0))
    return Qwen2MoeConfig(
        vocab_size=config["vocab_size"],
        hidden_size=config["hidden_size"],
        intermediate_size=config["intermediate_size"],
        num_hidden_layers=layers,
        num_attention_heads=config["num_attention_heads"],
        num_key_value_heads=config.get("num_key_value_heads") or config["num_attention_heads"],
        hidden_act=config.get("hidden_act", "silu"),
        max_position_embeddings=config.get("max_position_embeddings", 4096),
        initializer_range=config.get("initializer_range", 0.02),
        rms_norm_eps=config.get("rms_norm_eps", 1e-6),
        tie_word_embeddings=config.get("tie_word_embeddings", False),
        rope_parameters=_rope_parameters(config),
        use_sliding_window=False,
        attention_dropout=config.get("attention_dropout", 0.0),
        decoder_sparse_step=1,
        moe_intermediate_size=config["moe_intermediate_size"],
        shared_expert_intermediate_size=n_shared * config["moe_intermediate_size"],
        num_experts=config["n_routed_experts"],
        num_experts_per_tok=config["num_experts_per_tok"],
        norm_topk_prob=bool(config.get("norm_topk_prob", False)),
        mlp_only_layers=list(range(min(first_dense, layers))),
        qkv_bias=False,
        pad_token_id=config.get("pad_token_id"),
        bos_token_id=config.get("bos_token_id"),
        eos_token_id=config.get("eos_token_id"),
        dtype=config.get("torch_dtype", config.get("dtype")),
    )


@torch.no_grad()
def finish_loading_(model: nn.Module) -> int:
    """Make each shared expert count with weight 1; returns the number of MoE layers fixed.

    Call once, right after loading the unquantized checkpoint.
    """
    fixed = 0
    for module in model.modules():
        gate = getattr(module, "shared_expert_gate", None)
        shared = getattr(module, "shared_expert", None)
        if isinstance(gate, nn.Linear) and shared is not None:
            gate.weight.zero_()
            if gate.bias is not None:
                gate.bias.zero_()
            shared.down_proj.weight.mul_(2.0)
            fixed += 1
    return fixed


def write_random_checkpoint(
    directory: Any,
    config: dict[str, Any],
    *,
    seed: int = 0,
    dtype: torch.dtype = torch.float32,
    router_std: float = 0.5,
) -> dict[str, torch.Tensor]:
    """Save random DeepSeekMoE weights in DeepSeek's own key layout (for tests and benchmarks).

    Writes `config.json` (model_type `deepseek`) and `model.safetensors` with the keys of
    the Hub checkpoint: `model.layers.{i}.mlp.experts.{j}.*`, `mlp.shared_experts.*`,
    `mlp.gate.weight`, a dense `mlp.*_proj` in the first layers, and `lm_head.weight`.
    Returns the state dict.
    """
    import json
    from pathlib import Path

    from safetensors.torch import save_file

    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    generator = torch.Generator().manual_seed(seed)
    hidden = config["hidden_size"]
    heads = config["num_attention_heads"]
    kv_heads = config.get("num_key_value_heads") or heads
    head_dim = hidden // heads

    def normal(*shape: int, std: float = 0.02) -> torch.Tensor:
        return (torch.randn(*shape, generator=generator) * std).to(dtype)

    def mlp(prefix: str, width: int) -> dict[str, torch.Tensor]:
        return {
            f"{prefix}.gate_proj.weight": normal(width, hidden),
            f"{prefix}.up_proj.weight": normal(width, hidden),
            f"{prefix}.down_proj.weight": normal(hidden, width),
        }

    state: dict[str, torch.Tensor] = {
        "model.embed_tokens.weight": normal(config["vocab_size"], hidden),
        "model.norm.weight": (1 + normal(hidden, std=0.1)).to(dtype),
        "lm_head.weight": normal(config["vocab_size"], hidden),
    }
    for i in range(config["num_hidden_layers"]):
        p = f"model.layers.{i}"
        state[f"{p}.self_attn.q_proj.weight"] = normal(heads * head_dim, hidden)
        state[f"{p}.self_attn.k_proj.weight"] = normal(kv_heads * head_dim, hidden)
        state[f"{p}.self_attn.v_proj.weight"] = normal(kv_heads * head_dim, hidden)
        state[f"{p}.self_attn.o_proj.weight"] = normal(hidden, heads * head_dim)
        state[f"{p}.input_layernorm.weight"] = (1 + normal(hidden, std=0.1)).to(dtype)
        state[f"{p}.post_attention_layernorm.weight"] = (1 + normal(hidden, std=0.1)).to(dtype)
        if i < config.get("first_k_dense_replace", 0):
            state.update(mlp(f"{p}.mlp", config["intermediate_size"]))
            continue
        width = config["moe_intermediate_size"]
        state[f"{p}.mlp.gate.weight"] = normal(config["n_routed_experts"], hidden, std=router_std)
        for j in range(config["n_routed_experts"]):
            state.update(mlp(f"{p}.mlp.experts.{j}", width))
        state.update(mlp(f"{p}.mlp.shared_experts", config["n_shared_experts"] * width))
    save_file(state, str(directory / "model.safetensors"), metadata={"format": "pt"})
    (directory / "config.json").write_text(json.dumps(config, indent=2))
    return state


def deepseek_config(**overrides: Any) -> dict[str, Any]:
    """deepseek-moe-16b-base's config.json (as on the Hub), with optional overrides."""
    config: dict[str, Any] = {
        "architectures": ["DeepseekForCausalLM"],
        "auto_map": {
            "AutoConfig": "configuration_deepseek.DeepseekConfig",
            "AutoModel": "modeling_deepseek.DeepseekModel",
            "AutoModelForCausalLM": "modeling_deepseek.DeepseekForCausalLM",
        },
        "model_type": MODEL_TYPE,
        "attention_bias": False,
        "attention_dropout": 0.0,
        "aux_loss_alpha": 0.001,
        "bos_token_id": 100000,
        "eos_token_id": 100001,
        "first_k_dense_replace": 1,
        "hidden_act": "silu",
        "hidden_size": 2048,
        "initializer_range": 0.02,
        "intermediate_size": 10944,
        "max_position_embeddings": 4096,
        "moe_intermediate_size": 1408,
        "moe_layer_freq": 1,
        "n_routed_experts": 64,
        "n_shared_experts": 2,
        "norm_topk_prob": False,
        "num_attention_heads": 16,
        "num_experts_per_tok": 6,
        "num_hidden_layers": 28,
        "num_key_value_heads": 16,
        "pretraining_tp": 1,
        "rms_norm_eps": 1e-06,
        "rope_scaling": None,
        "rope_theta": 10000,
        "scoring_func": "softmax",
        "seq_aux": True,
        "tie_word_embeddings": False,
        "torch_dtype": "bfloat16",
        "use_cache": True,
        "vocab_size": 102400,
    }
    config.update(overrides)
    return config
