"""Loading an MoE model for feature extraction: device, dtype, quantization, tokenizer.

Only the base model is loaded (`AutoModel`): the LM head is never needed, so it is never
loaded or computed.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any, Literal

import torch
from transformers import AutoConfig, AutoModel, AutoTokenizer, PreTrainedTokenizerBase

from moee_pipeline.routers import Router, find_routers

logger = logging.getLogger(__name__)

Quantization = Literal["nf4", "int8", "none"]
DTYPES = {"bfloat16": torch.bfloat16, "float16": torch.float16, "float32": torch.float32}


class ModelLoadError(RuntimeError):
    """The model cannot be loaded; the message says what to do."""


@dataclass(frozen=True)
class ModelSpec:
    """What to load and how. `None` means: pick the default for the device."""

    model: str
    revision: str | None = None
    quantization: Quantization | None = None
    dtype: str | None = None
    device: str = "auto"
    trust_remote_code: bool = False

    def resolved_device(self) -> torch.device:
        if self.device == "auto":
            return torch.device("cuda" if torch.cuda.is_available() else "cpu")
        device = torch.device(self.device)
        if device.type == "cuda" and not torch.cuda.is_available():
            raise ModelLoadError(f"--device {self.device} asked for, but no CUDA GPU is visible")
        return device

    def resolved_quantization(self) -> Quantization:
        if self.quantization is not None:
            return self.quantization
        return "nf4" if self.resolved_device().type == "cuda" else "none"

    def resolved_dtype(self) -> str:
        if self.dtype is not None:
            if self.dtype not in DTYPES:
                raise ModelLoadError(f"unknown --dtype {self.dtype!r}; use one of {list(DTYPES)}")
            return self.dtype
        return "bfloat16" if self.resolved_device().type == "cuda" else "float32"


@dataclass
class LoadedModel:
    """A ready model: the base transformer, its tokenizer (left padding) and its routers."""

    spec: ModelSpec
    model: torch.nn.Module
    tokenizer: PreTrainedTokenizerBase
    routers: list[Router]
    device: torch.device
    quantization: Quantization
    dtype: str
    info: dict[str, Any] = field(default_factory=dict)

    @property
    def hidden_size(self) -> int:
        return int(self.model.config.hidden_size)

    @property
    def n_experts(self) -> int:
        return self.routers[0].n_experts

    @property
    def moe_layers(self) -> list[int]:
        return [r.layer for r in self.routers]


def _hub_kwargs(spec: ModelSpec) -> dict[str, Any]:
    return {"revision": spec.revision, "trust_remote_code": spec.trust_remote_code}


def load_tokenizer(spec: ModelSpec) -> PreTrainedTokenizerBase:
    """The model's tokenizer, set up for left padding (features are read at the last position)."""
    tokenizer = AutoTokenizer.from_pretrained(spec.model, **_hub_kwargs(spec))
    tokenizer.padding_side = "left"
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token or tokenizer.unk_token
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token_id = 0
    return tokenizer


def load_config(spec: ModelSpec) -> Any:
    """The model's config; a clear error when it cannot be found (offline, typo)."""
    try:
        return AutoConfig.from_pretrained(spec.model, **_hub_kwargs(spec))
    except (OSError, ValueError) as error:
        raise ModelLoadError(
            f"cannot load model {spec.model!r}: it is not a local folder and could not be "
            "fetched from the Hugging Face Hub (offline? typo?). Download it first "
            f"(`hf download {spec.model}`) or pass a local directory. ({error.__class__.__name__})"
        ) from error


def _quantization_config(quantization: Quantization, dtype: torch.dtype) -> Any:
    if quantization == "none":
        return None
    from transformers import BitsAndBytesConfig

    if quantization == "int8":
        return BitsAndBytesConfig(load_in_8bit=True, llm_int8_skip_modules=["lm_head", "gate"])
    return BitsAndBytesConfig(
        load_in_4bit=True,
        bnb_4bit_quant_type="nf4",
        bnb_4bit_use_double_quant=True,
        bnb_4bit_compute_dtype=dtype,
        llm_int8_skip_modules=["lm_head", "gate", "router"],
    )


def load_model(spec: ModelSpec) -> LoadedModel:
    """Load the base model, its tokenizer and find its routers.

    Raises:
        ModelLoadError: the model cannot be found or loaded.
        NotMoEError: the model has no expert router.
    """
    config = load_config(spec)
    device = spec.resolved_device()
    quantization = spec.resolved_quantization()
    dtype_name = spec.resolved_dtype()
    dtype = DTYPES[dtype_name]
    kwargs: dict[str, Any] = {"dtype": dtype, **_hub_kwargs(spec)}
    quant_config = _quantization_config(quantization, dtype)
    if quant_config is not None:
        kwargs["quantization_config"] = quant_config
        kwargs["device_map"] = {"": device.index or 0} if device.type == "cuda" else {"": "cpu"}
    logger.info("loading %s (%s, %s) on %s", spec.model, quantization, dtype_name, device)
    model = AutoModel.from_pretrained(spec.model, config=config, **kwargs)
    if quant_config is None:
        model.to(device)
    model.eval()
    hidden_size = int(model.config.hidden_size)
    routers = find_routers(model, hidden_size=hidden_size)
    return LoadedModel(
        spec=spec,
        model=model,
        tokenizer=load_tokenizer(spec),
        routers=routers,
        device=device,
        quantization=quantization,
        dtype=dtype_name,
        info={"revision": getattr(config, "_commit_hash", None) or spec.revision},
    )
