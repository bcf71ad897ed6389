"""True 4-bit / 8-bit storage: fused experts quantized, routers and LM head untouched."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import torch
import torch.nn.utils.parametrize as P
from torch import nn

from moee_pipeline.models import memory, quantize
from moee_pipeline.models.loading import LoadedModel, ModelSpec, load_model
from moee_pipeline.models.names import Quantization
from moee_pipeline.models.routers import find_routers
from tests.support.trees import unchanged

TEXTS = [
    "The cat sat on the mat.",
    "Markets fell sharply on Monday.",
    "How do I reset my card PIN?",
    'She said "hello" to everyone.',
]


@pytest.fixture(scope="module")
def expert_heavy(tmp_path_factory: pytest.TempPathFactory, tokenizer_dir: Path) -> Iterator[Path]:
    """A tiny OLMoE whose weights are mostly experts, as in the real models (read only)."""
    from moee_pipeline.testing.tiny import build_tiny_model

    folder = tmp_path_factory.mktemp("olmoe-heavy")
    path = build_tiny_model(
        "olmoe", folder, tokenizer_dir=tokenizer_dir, num_experts=16, intermediate_size=128
    )
    with unchanged(path, "the expert-heavy model"):
        yield path


def _load(path: Path, quantization: Quantization, dtype: str = "float32") -> LoadedModel:
    return load_model(
        ModelSpec(model=str(path), quantization=quantization, dtype=dtype, device="cpu")
    )


def _router_logits(loaded: LoadedModel) -> torch.Tensor:
    batch = loaded.tokenizer(TEXTS, return_tensors="pt", padding=True)
    with torch.no_grad():
        out = loaded.model(**batch, output_router_logits=True)
    mask = batch.attention_mask.reshape(-1).bool()
    return torch.stack([layer[mask] for layer in out.router_logits]).float()


def test_nf4_stores_every_expert_weight_in_4bit(expert_heavy: Path) -> None:
    bf16 = _load(expert_heavy, "none", dtype="bfloat16").info["weight_memory"]
    loaded = _load(expert_heavy, "nf4", dtype="bfloat16")
    report = loaded.info["weight_memory"]
    assert set(report["by_part_storage"]["experts"]) == {"nf4"}
    assert report["total_bytes"] < 0.35 * bf16["total_bytes"]
    for name, module in loaded.model.named_modules():
        if name.endswith("mlp.experts"):
            for param in ("gate_up_proj", "down_proj"):
                assert P.is_parametrized(module, param)
                assert module.parametrizations[param].original.dtype == torch.uint8
    # Routers stay full-precision and are still found.
    routers = find_routers(loaded.model, hidden_size=loaded.hidden_size)
    assert [r.name for r in routers] == [r.name for r in loaded.routers]
    assert all(r.weight.dtype == torch.bfloat16 for r in routers)
    assert set(report["by_part_storage"]["routers"]) == {"bfloat16"}
    assert set(report["by_part_storage"]["attention"]) == {"nf4", "bfloat16"}  # q/k norms


@pytest.mark.parametrize(("method", "min_agreement"), [("nf4", 0.6), ("int8", 0.9)])
def test_quantized_router_logits_are_close_not_equal(
    expert_heavy: Path, method: Quantization, min_agreement: float
) -> None:
    reference = _router_logits(_load(expert_heavy, "none"))
    got = _router_logits(_load(expert_heavy, method))
    diff = (got - reference).abs().mean().item()
    assert 0 < diff < 0.25 * reference.abs().mean().item()
    k = 2
    top_ref = reference.topk(k, dim=-1).indices.sort(dim=-1).values
    top_got = got.topk(k, dim=-1).indices.sort(dim=-1).values
    overlap = (top_ref.unsqueeze(-1) == top_got.unsqueeze(-2)).any(-1).float().mean().item()
    assert overlap >= min_agreement


def test_int8_stores_experts_in_8bit(expert_heavy: Path) -> None:
    report = _load(expert_heavy, "int8").info["weight_memory"]
    assert set(report["by_part_storage"]["experts"]) == {"int8"}
    assert set(report["by_part_storage"]["routers"]) == {"float32"}


def test_qwen_shared_expert_gate_is_not_quantized_nor_a_router(
    tiny_model: Callable[[str], Path],
) -> None:
    loaded = _load(tiny_model("qwen2_moe"), "nf4")
    gates = [m for n, m in loaded.model.named_modules() if n.endswith("shared_expert_gate")]
    assert gates and all(type(g) is nn.Linear for g in gates)
    assert all(not r.name.endswith("shared_expert_gate") for r in loaded.routers)
    assert loaded.moe_layers == [0, 2]  # tiny qwen2_moe: layer 1 is dense


def test_linear_selection() -> None:
    linear = nn.Linear(64, 64)
    assert quantize.quantizable_linear("layers.0.self_attn.q_proj", linear)
    assert not quantize.quantizable_linear("layers.0.mlp.gate", linear)
    assert not quantize.quantizable_linear("layers.0.mlp.router", linear)
    assert not quantize.quantizable_linear("lm_head", linear)
    assert not quantize.quantizable_linear("layers.0.mlp.shared_expert_gate", nn.Linear(64, 1))
    fused = torch.empty(4, 64, 32)
    assert quantize.quantizable_parameter("layers.0.mlp.experts", "gate_up_proj", fused)
    assert not quantize.quantizable_parameter("layers.0.mlp.gate", "weight", torch.empty(4, 64))


def test_estimate_matches_report(expert_heavy: Path) -> None:
    for method in ("none", "nf4", "int8"):
        loaded = _load(expert_heavy, method)
        estimate = memory.estimate_weight_memory(
            loaded.model.config, quantization=method, dtype=torch.float32
        )
        actual = loaded.info["weight_memory"]["total_bytes"]
        assert abs(estimate["total_bytes"] - actual) <= 0.1 * actual


def test_weight_memory_reaches_the_manifest_metadata(expert_heavy: Path) -> None:
    from moee_pipeline.extract.runinfo import run_metadata
    from moee_pipeline.prompts import resolve_prompt

    loaded = _load(expert_heavy, "nf4")
    meta = run_metadata(
        loaded, prompt=resolve_prompt("none"), task="STS12", max_length=64, model_id="x"
    )
    assert meta["weight_memory"]["by_storage"]["nf4"] > 0
    assert meta["quantization"] == "nf4"


@pytest.mark.parametrize(
    ("name", "part"),
    [
        ("layers.0.mlp.experts.parametrizations.gate_up_proj.original", "experts"),
        ("layers.3.mlp.shared_expert.down_proj.weight", "experts"),
        ("layers.3.mlp.shared_experts.down_proj.weight", "experts"),
        ("layers.0.mlp.gate.weight", "routers"),
        ("layers.0.block_sparse_moe.gate.weight", "routers"),
        ("layers.0.self_attn.q_proj.weight", "attention"),
        ("layers.0.mlp.gate_proj.weight", "dense_mlp"),
        ("embed_tokens.weight", "embeddings"),
        ("lm_head.weight", "embeddings"),
        ("layers.0.input_layernorm.weight", "other"),
        ("norm.weight", "other"),
    ],
)
def test_classify(name: str, part: str) -> None:
    assert memory.classify(name) == part


def test_int8_parametrization_round_trip() -> None:
    module = nn.Module()
    weight = torch.randn(3, 64, 32)
    module.w = nn.Parameter(weight.clone())
    quantize._quantize_parameter(module, "w", "int8", torch.device("cpu"))
    parametrizations = module.parametrizations
    assert isinstance(parametrizations, nn.ModuleDict)
    stored = parametrizations["w"]
    assert isinstance(stored, P.ParametrizationList)
    assert stored.original.dtype == torch.int8
    scale = weight.abs().amax(dim=-1, keepdim=True) / 127
    assert ((module.w - weight).abs() <= scale / 2 + 1e-6).all()
