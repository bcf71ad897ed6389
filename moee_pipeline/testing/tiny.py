"""Tiny random MoE models and a tokenizer trained on the fly, for tests, the demo and benchmarks.

Nothing here touches the network: the tokenizer is a byte-level BPE trained in about a
second, and models are built from transformers configs with random weights, then saved
with `save_pretrained` so they load through the same code path as a real checkpoint.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

import torch
from transformers import AutoConfig, AutoModelForCausalLM, PreTrainedTokenizerFast

from moee_pipeline.models.quiet import quiet_transformers

#: DeepSeek-V2/V3 share their MoE layout (dense first layer, shared expert) and MLA attention.
_DEEPSEEK: dict[str, Any] = {
    "n_routed_experts": 8,
    "num_key_value_heads": 4,
    "n_shared_experts": 1,
    "num_experts_per_tok": 2,
    "moe_intermediate_size": 32,
    "first_k_dense_replace": 1,
    "kv_lora_rank": 16,
    "qk_nope_head_dim": 16,
    "qk_rope_head_dim": 16,
    "v_head_dim": 16,
    "n_group": 1,
    "topk_group": 1,
}

#: Small architectures of each router family we support, keyed by a short name.
TINY_CONFIGS: dict[str, dict[str, Any]] = {
    "olmoe": {"model_type": "olmoe", "num_experts": 8, "num_experts_per_tok": 2},
    "qwen2_moe": {
        "model_type": "qwen2_moe",
        "num_experts": 8,
        "num_experts_per_tok": 2,
        "moe_intermediate_size": 32,
        "shared_expert_intermediate_size": 64,
        "mlp_only_layers": [1],
        "qkv_bias": True,
    },
    "qwen3_moe": {
        "model_type": "qwen3_moe",
        "num_experts": 8,
        "num_experts_per_tok": 2,
        "moe_intermediate_size": 32,
    },
    "mixtral": {"model_type": "mixtral", "num_local_experts": 8, "num_experts_per_tok": 2},
    "deepseek_v2": {**_DEEPSEEK, "model_type": "deepseek_v2", "q_lora_rank": None},
    "deepseek_v3": {**_DEEPSEEK, "model_type": "deepseek_v3", "q_lora_rank": 32},
}

_CORPUS = (
    "The cat sat on the mat. A man is playing a guitar. Markets fell sharply on Monday.",
    "How do I reset my card PIN? The weather is sunny and warm today! Is this a question?",
    'She said "hello" to everyone. Researchers study mixture-of-experts language models.',
    "Two dogs run across a green field. Summaries should be faithful to the article.",
)


def train_tokenizer(
    directory: Path, *, texts: Iterable[str] = _CORPUS, vocab_size: int = 512
) -> PreTrainedTokenizerFast:
    """Train a byte-level BPE tokenizer (pad id 0, bos id 1) and save it to `directory`."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers

    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=["<pad>", "<s>", "</s>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,  # its bars go to stdout, even when it is not a terminal
    )
    tokenizer.train_from_iterator(list(texts) * 4, trainer=trainer)
    tokenizer.post_processor = processors.TemplateProcessing(
        single="<s> $A", special_tokens=[("<s>", 1)]
    )
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tokenizer,
        pad_token="<pad>",
        bos_token="<s>",
        eos_token="</s>",
        padding_side="left",
    )
    fast.save_pretrained(directory)
    return fast


def tiny_config(kind: str, *, vocab_size: int, **overrides: Any) -> Any:
    """A transformers config for a tiny model of one family; overrides change any field."""
    if kind not in TINY_CONFIGS:
        raise ValueError(f"unknown tiny model kind {kind!r}; choose from {sorted(TINY_CONFIGS)}")
    fields = dict(TINY_CONFIGS[kind])
    model_type = fields.pop("model_type")
    base = {
        "vocab_size": vocab_size,
        "hidden_size": 64,
        "intermediate_size": 128,
        "num_hidden_layers": 3,
        "num_attention_heads": 4,
        "num_key_value_heads": 2,
        "max_position_embeddings": 1024,
        "pad_token_id": 0,
        "bos_token_id": 1,
        "eos_token_id": 2,
        "tie_word_embeddings": False,
    }
    return AutoConfig.for_model(model_type, **{**base, **fields, **overrides})


def build_tiny_model(
    kind: str, directory: Path, *, tokenizer_dir: Path, seed: int = 0, **overrides: Any
) -> Path:
    """Save a random tiny MoE causal LM (and a copy of the tokenizer) to `directory`."""
    tokenizer = PreTrainedTokenizerFast.from_pretrained(tokenizer_dir)
    config = tiny_config(kind, vocab_size=len(tokenizer), **overrides)
    torch.manual_seed(seed)
    model = AutoModelForCausalLM.from_config(config)
    # Random init gives near-uniform routers; a larger scale makes routing text-dependent.
    with torch.no_grad():
        for name, param in model.named_parameters():
            if name.endswith("gate.weight") and param.dim() == 2 and param.shape[0] > 1:
                param.normal_(0.0, 0.5)
    with quiet_transformers():  # no "Writing model shards" bar in `make demo`
        model.save_pretrained(directory)
    tokenizer.save_pretrained(directory)
    return directory
