"""True 4-bit (NF4) and 8-bit storage for MoE models, fused 3-D experts included.

transformers quantizes only modules that are exactly `nn.Linear`; the fused 3-D expert
weights of transformers 5 MoE models (about 93% of their parameters) then stay in bf16.
Here the model is loaded unquantized on the CPU and quantized block by block onto the
target device: each weight travels to the device alone and is quantized there, so the
device never holds more than the quantized model plus one full-precision tensor.

What is quantized (`quantizable_linear`, `quantizable_parameter`):
- every `nn.Linear` except routers (`gate`/`router`: they are what we measure), the LM
  head, and Linears whose out_features is not a multiple of 32 (bitsandbytes' CPU 4-bit
  kernels reject them; in practice only Qwen's one-output `shared_expert_gate`);
- every floating 3-D parameter (fused experts, e.g. `gate_up_proj (E, 2I, H)`), stored
  through a parametrization that dequantizes the layer's experts while it runs.
Embeddings, norms and routers stay in the model dtype.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any, Literal

import torch
import torch.nn.utils.parametrize as P
from torch import nn

from moee_pipeline.models.routers import ROUTER_NAMES

logger = logging.getLogger(__name__)

Method = Literal["nf4", "int8"]
METHODS: tuple[Method, ...] = ("nf4", "int8")
#: Linear modules never quantized, by the last component of their name.
SKIP_NAMES = (*ROUTER_NAMES, "lm_head")
#: bitsandbytes 4-bit on CPU needs out_features divisible by this block.
OUT_FEATURES_MULTIPLE = 32
#: Stored bytes per weight, quantization statistics included (blocksize 64).
#: nf4 with double quantization: 4 bits + a uint8 absmax per 64 + a float32 per 256 blocks.
BYTES_PER_WEIGHT: dict[str, float] = {"nf4": 0.5 + 1 / 64 + 4 / (64 * 256), "int8": 1.0}


def _leaf(name: str) -> str:
    return name.rsplit(".", 1)[-1]


def quantizable_linear(name: str, module: nn.Module) -> bool:
    """Whether a module is an `nn.Linear` that gets quantized."""
    return (
        type(module) is nn.Linear
        and _leaf(name) not in SKIP_NAMES
        and module.out_features % OUT_FEATURES_MULTIPLE == 0
    )


def quantizable_parameter(module_name: str, param_name: str, param: torch.Tensor) -> bool:
    """Whether a (non-Linear) parameter gets quantized: fused 3-D expert weights."""
    del param_name
    return (
        param.dim() == 3 and param.dtype.is_floating_point and _leaf(module_name) not in SKIP_NAMES
    )


# ---------------------------------------------------------------------------------------
# int8 for fused experts: row-wise absmax, dequantized while the layer runs
# ---------------------------------------------------------------------------------------


class Int8RowwiseParametrization(nn.Module):
    """Dequantizes an int8 tensor stored with one absmax scale per output row."""

    scale: torch.Tensor

    def __init__(self, scale: torch.Tensor) -> None:
        super().__init__()
        self.register_buffer("scale", scale)

    @torch.no_grad()
    def forward(self, quantized: torch.Tensor) -> torch.Tensor:
        return quantized.to(self.scale.dtype) * self.scale


def _enable_cache(_module: nn.Module, _inputs: Any) -> None:
    P._cache_enabled += 1


def _disable_cache(_module: nn.Module, _inputs: Any, _output: Any) -> None:
    P._cache_enabled = max(0, P._cache_enabled - 1)
    if not P._cache_enabled:
        P._cache = {}


def _quantize_parameter_int8(module: nn.Module, name: str) -> None:
    weight = getattr(module, name).data
    scale = weight.abs().amax(dim=-1, keepdim=True).float().clamp_min(1e-12) / 127.0
    quantized = torch.round(weight.float() / scale).clamp_(-127, 127).to(torch.int8)
    setattr(module, name, nn.Parameter(quantized, requires_grad=False))
    P.register_parametrization(
        module, name, Int8RowwiseParametrization(scale.to(weight.dtype)), unsafe=True
    )
    if not getattr(module, "_moee_cache_hooks", False):
        # Dequantize each tensor once per forward of this module, then drop it.
        module.register_forward_pre_hook(_enable_cache)
        module.register_forward_hook(_disable_cache, always_call=True)
        # nn.Module types its attributes as Tensor | Module; a plain flag is what we mean
        module._moee_cache_hooks = True  # type: ignore[assignment]


def _quantize_parameter(module: nn.Module, name: str, method: Method, device: torch.device) -> None:
    param = getattr(module, name)
    setattr(module, name, nn.Parameter(param.data.to(device), requires_grad=False))
    del param
    if method == "nf4":
        from bitsandbytes.nn.parametrize import replace_parameter_4bit

        replace_parameter_4bit(module, name, compress_statistics=True, quant_type="nf4")
    else:
        _quantize_parameter_int8(module, name)


# ---------------------------------------------------------------------------------------
# nn.Linear -> bitsandbytes Linear4bit / Linear8bitLt
# ---------------------------------------------------------------------------------------


def _quantized_linear(
    linear: nn.Linear, method: Method, compute_dtype: torch.dtype, device: torch.device
) -> nn.Module:
    import bitsandbytes as bnb

    has_bias = linear.bias is not None
    if method == "nf4":
        new: nn.Module = bnb.nn.Linear4bit(
            linear.in_features,
            linear.out_features,
            bias=has_bias,
            compute_dtype=compute_dtype,
            compress_statistics=True,
            quant_type="nf4",
            device="meta",
        )
        new.weight = bnb.nn.Params4bit(
            linear.weight.data, requires_grad=False, quant_type="nf4", compress_statistics=True
        )
    else:
        new = bnb.nn.Linear8bitLt(
            linear.in_features,
            linear.out_features,
            bias=has_bias,
            has_fp16_weights=False,
            threshold=0.0,
            device="meta",
        )
        # Int8Params quantizes when moved off the CPU, so it must start there.
        new.weight = bnb.nn.Int8Params(
            linear.weight.data.cpu(), requires_grad=False, has_fp16_weights=False
        )
    if has_bias:
        new.bias = nn.Parameter(linear.bias.data.to(compute_dtype), requires_grad=False)
    return new.to(device)


# ---------------------------------------------------------------------------------------
# Whole model, block by block
# ---------------------------------------------------------------------------------------


def _move_remaining(block: nn.Module, device: torch.device, *, recurse: bool = True) -> None:
    """Move every parameter and buffer not yet on `device` (quantized ones already are)."""
    for module in block.modules() if recurse else [block]:
        for name, param in list(module._parameters.items()):
            if param is not None and param.device != device:
                module._parameters[name] = nn.Parameter(
                    param.data.to(device), requires_grad=param.requires_grad
                )
        for name, buffer in list(module._buffers.items()):
            if buffer is not None and buffer.device != device:
                module._buffers[name] = buffer.to(device)


def quantize_block_(
    block: nn.Module,
    *,
    method: Method,
    device: torch.device,
    compute_dtype: torch.dtype,
    prefix: str = "",
) -> int:
    """Quantize one block in place onto `device`; returns how many tensors were quantized."""
    count = 0
    for name, module in list(block.named_modules(prefix=prefix)):
        for child_name, child in list(module.named_children()):
            full = f"{name}.{child_name}" if name else child_name
            if quantizable_linear(full, child):
                setattr(module, child_name, _quantized_linear(child, method, compute_dtype, device))
                count += 1
        if P.is_parametrized(module):
            continue
        for param_name, param in list(module.named_parameters(recurse=False)):
            if quantizable_parameter(name, param_name, param):
                _quantize_parameter(module, param_name, method, device)
                count += 1
    _move_remaining(block, device)
    return count


def placed_device(device_map: Mapping[str, int | str], name: str) -> torch.device:
    """The device an accelerate device map gives module `name` (its longest listed prefix)."""
    best = max(
        (k for k in device_map if k == "" or name == k or name.startswith(f"{k}.")),
        key=len,
        default=None,
    )
    if best is None:
        raise ValueError(f"the device map places no module containing {name!r}")
    where = device_map[best]
    return torch.device(f"cuda:{where}" if isinstance(where, int) else where)


def quantize_model_(
    model: nn.Module,
    *,
    method: Method,
    device: torch.device,
    compute_dtype: torch.dtype,
    device_map: Mapping[str, int | str] | None = None,
) -> nn.Module:
    """Quantize a model loaded on the CPU onto `device`, one block at a time.

    Each element of a ModuleList (a decoder layer) is one block; other children
    (embeddings, final norm, rotary tables) are moved as they are. With a `device_map`
    (accelerate's, by module name) each block goes to its own device instead.
    """
    if method not in METHODS:
        raise ValueError(f"unknown quantization {method!r}; use one of {METHODS}")
    total = 0
    home = device

    def device_of(name: str) -> torch.device:
        if device_map is None:
            return home
        return placed_device(device_map, name or next(iter(device_map)))

    def visit(module: nn.Module, prefix: str) -> None:
        nonlocal total
        for child_name, child in module.named_children():
            full = f"{prefix}{child_name}"
            if isinstance(child, nn.ModuleList):
                for index, layer in enumerate(child):
                    target = device_of(f"{full}.{index}")
                    total += quantize_block_(
                        layer,
                        method=method,
                        device=target,
                        compute_dtype=compute_dtype,
                        prefix=f"{full}.{index}",
                    )
                    if target.type == "cuda":
                        torch.cuda.empty_cache()
            elif any(isinstance(m, nn.ModuleList) for m in child.modules()):
                visit(child, f"{full}.")
            else:
                total += quantize_block_(
                    child,
                    method=method,
                    device=device_of(full),
                    compute_dtype=compute_dtype,
                    prefix=full,
                )
        _move_remaining(module, device_of(prefix.rstrip(".")), recurse=False)

    visit(model, "")
    logger.info("quantized %d tensors to %s on %s", total, method, device)
    return model
