"""The names both stages and the CLI use for models: aliases of the paper's models, quantization
and dtype choices. Torch-free, so `moee score` and `moee report` resolve them without loading the
model stack."""

from __future__ import annotations

from typing import Literal

#: alias -> Hugging Face id
MODEL_ALIASES: dict[str, str] = {
    "olmoe": "allenai/OLMoE-1B-7B-0924",
    "qwen1.5-moe": "Qwen/Qwen1.5-MoE-A2.7B",
    "deepseek-moe": "deepseek-ai/deepseek-moe-16b-base",
}

#: The model both stages use when --model is not given.
DEFAULT_MODEL = MODEL_ALIASES["olmoe"]


def resolve_model(name: str) -> str:
    """The Hub id for an alias (`olmoe`, `qwen1.5-moe`, `deepseek-moe`); other names as given."""
    return MODEL_ALIASES.get(name.strip().lower(), name)


Quantization = Literal["nf4", "int8", "none"]
#: --quantization choices (weights of experts and linears; routers stay full precision)
QUANTIZATIONS: tuple[Quantization, ...] = ("nf4", "int8", "none")
#: --dtype choices (compute dtype of the unquantized parts)
DTYPE_NAMES: tuple[str, ...] = ("bfloat16", "float16", "float32")
