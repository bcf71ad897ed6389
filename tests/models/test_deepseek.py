"""DeepSeekMoE through the native Qwen2Moe mapping, checked against a reference implementation.

The reference below is written from DeepSeekMoE's own modeling code (transformers 4.36 era):
plain multi-head attention with rotary embeddings, a dense MLP in the first
`first_k_dense_replace` layers, then routed experts chosen by top-k of a softmax over all
experts (no renormalization) plus shared experts added with weight 1. It reads the
checkpoint in DeepSeek's own key layout and shares no code with transformers.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from moee_pipeline.models import deepseek
from moee_pipeline.models.loading import ModelSpec, load_model, native_mapping
from tests.support.trees import unchanged

TINY = {
    "hidden_size": 64,
    "intermediate_size": 128,
    "moe_intermediate_size": 32,
    "n_routed_experts": 8,
    "n_shared_experts": 2,
    "num_experts_per_tok": 3,
    "num_hidden_layers": 3,
    "num_attention_heads": 4,
    "num_key_value_heads": 4,
    "first_k_dense_replace": 1,
    "torch_dtype": "float32",
    "bos_token_id": 1,
    "eos_token_id": 2,
}


# ----------------------------------------------------------------- reference DeepSeekMoE


def _rms(x: torch.Tensor, weight: torch.Tensor, eps: float) -> torch.Tensor:
    return weight * (x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps))


def _rotate_half(x: torch.Tensor) -> torch.Tensor:
    half = x.shape[-1] // 2
    return torch.cat((-x[..., half:], x[..., :half]), dim=-1)


def _attention(x: torch.Tensor, sd: dict, p: str, cfg: dict) -> torch.Tensor:
    b, t, _ = x.shape
    heads = cfg["num_attention_heads"]
    dim = cfg["hidden_size"] // heads

    def proj(name: str) -> torch.Tensor:
        return (x @ sd[f"{p}.self_attn.{name}.weight"].T).view(b, t, heads, dim).transpose(1, 2)

    q, k, v = proj("q_proj"), proj("k_proj"), proj("v_proj")
    inv_freq = 1.0 / (cfg["rope_theta"] ** (torch.arange(0, dim, 2).float() / dim))
    freqs = torch.outer(torch.arange(t).float(), inv_freq)
    emb = torch.cat((freqs, freqs), dim=-1)
    cos, sin = emb.cos(), emb.sin()
    q, k = q * cos + _rotate_half(q) * sin, k * cos + _rotate_half(k) * sin
    scores = q @ k.transpose(-1, -2) / math.sqrt(dim)
    causal = torch.triu(torch.ones(t, t, dtype=torch.bool), diagonal=1)
    scores = scores.masked_fill(causal, float("-inf")).softmax(dim=-1)
    out = (scores @ v).transpose(1, 2).reshape(b, t, heads * dim)
    return out @ sd[f"{p}.self_attn.o_proj.weight"].T


def _mlp(x: torch.Tensor, sd: dict, p: str) -> torch.Tensor:
    gate = F.silu(x @ sd[f"{p}.gate_proj.weight"].T)
    return (gate * (x @ sd[f"{p}.up_proj.weight"].T)) @ sd[f"{p}.down_proj.weight"].T


def _moe(x: torch.Tensor, sd: dict, p: str, cfg: dict) -> tuple[torch.Tensor, torch.Tensor]:
    flat = x.reshape(-1, x.shape[-1])
    logits = flat @ sd[f"{p}.mlp.gate.weight"].T
    scores = logits.softmax(dim=-1)
    weight, index = torch.topk(scores, cfg["num_experts_per_tok"], dim=-1)  # no renormalization
    out = torch.zeros_like(flat)
    for token in range(flat.shape[0]):
        for w, e in zip(weight[token], index[token], strict=True):
            out[token] += w * _mlp(flat[token], sd, f"{p}.mlp.experts.{int(e)}")
    out = out + _mlp(flat, sd, f"{p}.mlp.shared_experts")
    return out.view_as(x), logits


def reference_forward(
    sd: dict, cfg: dict, input_ids: torch.Tensor
) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """(last hidden state after the final norm, router logits per MoE layer)."""
    eps = cfg["rms_norm_eps"]
    h = sd["model.embed_tokens.weight"][input_ids]
    router_logits = []
    for i in range(cfg["num_hidden_layers"]):
        p = f"model.layers.{i}"
        h = h + _attention(_rms(h, sd[f"{p}.input_layernorm.weight"], eps), sd, p, cfg)
        normed = _rms(h, sd[f"{p}.post_attention_layernorm.weight"], eps)
        if i < cfg["first_k_dense_replace"]:
            h = h + _mlp(normed, sd, f"{p}.mlp")
        else:
            out, logits = _moe(normed, sd, p, cfg)
            h = h + out
            router_logits.append(logits)
    return _rms(h, sd["model.norm.weight"], eps), router_logits


# ----------------------------------------------------------------------------------- tests


@pytest.fixture(scope="module")
def deepseek_dir(tmp_path_factory: pytest.TempPathFactory, tokenizer_dir: Path) -> Iterator[Path]:
    from transformers import PreTrainedTokenizerFast

    tokenizer = PreTrainedTokenizerFast.from_pretrained(tokenizer_dir)
    folder = tmp_path_factory.mktemp("deepseek")
    deepseek.write_random_checkpoint(
        folder, deepseek.deepseek_config(vocab_size=len(tokenizer), **TINY), seed=3
    )
    tokenizer.save_pretrained(folder)
    with unchanged(folder, "the tiny DeepSeekMoE checkpoint"):
        yield folder


def _state(folder: Path) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    return load_file(str(folder / "model.safetensors"))


def test_checkpoint_uses_deepseek_key_layout(deepseek_dir: Path) -> None:
    keys = set(_state(deepseek_dir))
    assert "model.layers.0.mlp.gate_proj.weight" in keys
    assert "model.layers.1.mlp.experts.7.down_proj.weight" in keys
    assert "model.layers.1.mlp.shared_experts.up_proj.weight" in keys
    assert "model.layers.2.mlp.gate.weight" in keys
    assert not any("shared_expert." in k or "gate_up_proj" in k for k in keys)


def test_native_load_matches_reference_implementation(deepseek_dir: Path) -> None:
    loaded = load_model(
        ModelSpec(model=str(deepseek_dir), quantization="none", dtype="float32", device="cpu")
    )
    assert loaded.model.config.model_type == "qwen2_moe"
    assert loaded.info["checkpoint_model_type"] == "deepseek"
    assert loaded.moe_layers == [1, 2]  # layer 0 is dense
    assert loaded.n_experts == 8
    sd = _state(deepseek_dir)
    cfg = deepseek.deepseek_config(**TINY)
    input_ids = loaded.tokenizer(
        ["Two dogs run across a green field.", "How do I reset my card PIN?"],
        return_tensors="pt",
        padding="max_length",
        max_length=12,
        truncation=True,
    ).input_ids
    with torch.no_grad():
        out = loaded.model(input_ids=input_ids, output_router_logits=True)
        expected_hidden, expected_logits = reference_forward(sd, cfg, input_ids)
    torch.testing.assert_close(out.last_hidden_state, expected_hidden, atol=2e-5, rtol=1e-4)
    assert len(out.router_logits) == len(expected_logits) == 2
    for got, want in zip(out.router_logits, expected_logits, strict=True):
        torch.testing.assert_close(got, want, atol=1e-5, rtol=1e-5)
    # The project's router view computes the same logits as the checkpoint's gate.
    hidden = torch.randn(5, cfg["hidden_size"])
    torch.testing.assert_close(
        loaded.routers[0].logits(hidden), hidden @ sd["model.layers.1.mlp.gate.weight"].T
    )


def test_native_load_nf4_keeps_routers_full_precision(deepseek_dir: Path) -> None:
    loaded = load_model(
        ModelSpec(model=str(deepseek_dir), quantization="nf4", dtype="float32", device="cpu")
    )
    sd = _state(deepseek_dir)
    assert torch.equal(loaded.routers[1].weight, sd["model.layers.2.mlp.gate.weight"])
    report = loaded.info["weight_memory"]
    assert set(report["by_part_storage"]["experts"]) == {"nf4", "float32"}  # float32: 1-out gate
    assert report["by_part_storage"]["dense_mlp"] == {"nf4": report["by_part"]["dense_mlp"]}


def test_shared_expert_is_added_with_weight_one() -> None:
    from transformers import AutoModel

    cfg = deepseek.qwen2moe_config(deepseek.deepseek_config(vocab_size=64, **TINY))
    torch.manual_seed(0)
    model = AutoModel.from_config(cfg)
    block = model.layers[1].mlp
    down = block.shared_expert.down_proj.weight.clone()
    assert deepseek.finish_loading_(model) == 2
    assert torch.count_nonzero(block.shared_expert_gate.weight) == 0
    assert torch.equal(block.shared_expert.down_proj.weight, 2 * down)


def test_config_mapping() -> None:
    cfg = deepseek.qwen2moe_config(deepseek.deepseek_config())
    assert cfg.mlp_only_layers == [0]
    assert cfg.num_experts == 64 and cfg.num_experts_per_tok == 6
    assert cfg.shared_expert_intermediate_size == 2 * 1408
    assert cfg.norm_topk_prob is False and cfg.qkv_bias is False
    with pytest.raises(deepseek.UnsupportedDeepSeekConfig):
        deepseek.qwen2moe_config(deepseek.deepseek_config(scoring_func="sigmoid"))


def test_trust_remote_code_bypasses_native_mapping(deepseek_dir: Path) -> None:
    assert native_mapping(ModelSpec(model=str(deepseek_dir))) is not None
    assert native_mapping(ModelSpec(model=str(deepseek_dir), trust_remote_code=True)) is None
