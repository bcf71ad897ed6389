"""Weight memory of a loaded model by part and storage type, and an estimate before loading.

Parts: experts (routed and shared experts, with the shared-expert gate), attention, dense MLP
(layers without experts), embeddings (and an LM head, if any), routers, other (norms,
rotary tables). Storage types: `nf4`, `int8`, or the dtype of unquantized tensors. The
bytes of a quantized weight include its quantization statistics (absmax, codebooks).
"""

from __future__ import annotations

import sys
from collections import defaultdict
from collections.abc import Iterator
from typing import Any, cast

import torch
import torch.nn.utils.parametrize as P
from torch import nn

from moee_pipeline.models import quantize
from moee_pipeline.models.routers import ROUTER_NAMES
from moee_pipeline.units import format_bytes

PARTS = ("experts", "attention", "dense_mlp", "embeddings", "routers", "other")
GIB = 1024**3


def classify(name: str) -> str:
    """The part a parameter or buffer belongs to, from its full dotted name."""
    parts = [p for p in name.split(".") if p not in ("parametrizations", "original")]
    modules = parts[:-1]
    if any("expert" in p for p in modules):
        return "experts"
    if modules and modules[-1] in ROUTER_NAMES:
        return "routers"
    if any("attn" in p or "attention" in p for p in modules):
        return "attention"
    if any(p.startswith(("embed", "wte", "wpe", "lm_head")) for p in modules):
        return "embeddings"
    if any(p in ("mlp", "feed_forward", "ffn", "block_sparse_moe") for p in modules):
        return "dense_mlp"
    return "other"


def _dtype_name(dtype: torch.dtype) -> str:
    return str(dtype).removeprefix("torch.")


def _quant_state_bytes(state: Any) -> int:
    total = 0
    for attr in ("absmax", "code", "offset"):
        value = getattr(state, attr, None)
        if isinstance(value, torch.Tensor):
            total += value.numel() * value.element_size()
    nested = getattr(state, "state2", None)
    if nested is not None:
        total += _quant_state_bytes(nested)
    return total


def _entries(model: nn.Module) -> Iterator[tuple[str, str, int]]:
    """(full name, storage type, bytes) for every stored tensor of the model."""
    # A tensor can only be bitsandbytes-quantized once bitsandbytes is imported (by our quantizer
    # or transformers'); importing it just to find nothing costs ~1.7 s of an unquantized run.
    params4: tuple[type, ...] = ()
    params8: tuple[type, ...] = ()
    parametrizations4: tuple[type, ...] = ()
    if "bitsandbytes" in sys.modules:
        import bitsandbytes as bnb
        from bitsandbytes.nn.parametrize import Bnb4bitParametrization

        params4, params8 = (bnb.nn.Params4bit,), (bnb.nn.Int8Params,)
        parametrizations4 = (Bnb4bitParametrization,)

    for module_name, module in model.named_modules():
        prefix = f"{module_name}." if module_name else ""
        for name, param in module.named_parameters(recurse=False):
            size = param.numel() * param.element_size()
            if isinstance(param, params4):
                state = cast(Any, param).quant_state
                yield prefix + name, state.quant_type, size + _quant_state_bytes(state)
            elif isinstance(param, params8):
                scb = getattr(param, "SCB", None)
                extra = scb.numel() * scb.element_size() if isinstance(scb, torch.Tensor) else 0
                yield prefix + name, "int8", size + extra
            elif isinstance(module, P.ParametrizationList):
                first = module[0]
                if isinstance(first, parametrizations4):
                    state = cast(Any, first).quant_state
                    yield prefix + name, state.quant_type, size + _quant_state_bytes(state)
                elif isinstance(first, quantize.Int8RowwiseParametrization):
                    yield prefix + name, "int8", size
                else:
                    yield prefix + name, _dtype_name(param.dtype), size
            else:
                yield prefix + name, _dtype_name(param.dtype), size
        for name, buffer in module.named_buffers(recurse=False):
            storage = (
                "int8"
                if isinstance(module, quantize.Int8RowwiseParametrization)
                else _dtype_name(buffer.dtype)
            )
            yield prefix + name, storage, buffer.numel() * buffer.element_size()


def _summarize(rows: Iterator[tuple[str, str, int]]) -> dict[str, Any]:
    by_part: dict[str, int] = dict.fromkeys(PARTS, 0)
    by_storage: dict[str, int] = defaultdict(int)
    by_part_storage: dict[str, dict[str, int]] = {part: defaultdict(int) for part in PARTS}
    total = 0
    for name, storage, size in rows:
        part = classify(name)
        by_part[part] += size
        by_storage[storage] += size
        by_part_storage[part][storage] += size
        total += size
    return {
        "total_bytes": total,
        "by_part": by_part,
        "by_storage": dict(sorted(by_storage.items())),
        "by_part_storage": {k: dict(sorted(v.items())) for k, v in by_part_storage.items()},
    }


def weight_memory(model: nn.Module) -> dict[str, Any]:
    """Bytes actually held by the model's parameters and buffers, by part and storage type."""
    return _summarize(_entries(model))


def estimate_weight_memory(config: Any, *, quantization: str, dtype: torch.dtype) -> dict[str, Any]:
    """What `weight_memory` will report after loading, computed from the config alone.

    The model is built on the meta device (no memory), and each tensor is sized by the
    same rules the quantizer applies.
    """
    from transformers import AutoModel

    with torch.device("meta"):
        model = AutoModel.from_config(config, dtype=dtype)
    dtype_size = torch.empty((), dtype=dtype).element_size()

    def rows() -> Iterator[tuple[str, str, int]]:
        linears = {
            f"{name}.weight"
            for name, module in model.named_modules()
            if quantization != "none" and quantize.quantizable_linear(name, module)
        }
        for module_name, module in model.named_modules():
            prefix = f"{module_name}." if module_name else ""
            for name, param in module.named_parameters(recurse=False):
                full = prefix + name
                quantized = quantization != "none" and (
                    full in linears or quantize.quantizable_parameter(module_name, name, param)
                )
                if quantized:
                    per_weight = quantize.BYTES_PER_WEIGHT[quantization]
                    yield full, quantization, round(param.numel() * per_weight)
                elif param.dtype.is_floating_point:
                    yield full, _dtype_name(dtype), param.numel() * dtype_size
                else:
                    yield full, _dtype_name(param.dtype), param.numel() * param.element_size()

    report = _summarize(rows())
    report["parameters"] = sum(p.numel() for p in model.parameters())
    layers = [m for m in model.modules() if isinstance(m, nn.ModuleList)]
    largest = max((sum(p.numel() for p in layer.parameters()) for layer in layers[0]), default=0)
    report["largest_layer_bytes"] = largest * dtype_size if layers else 0
    return report


def format_report(report: dict[str, Any], *, title: str = "weight memory") -> str:
    """A small table for the terminal."""
    total = max(int(report["total_bytes"]), 1)
    lines = [f"{title}: {format_bytes(total)}"]
    for part in PARTS:
        size = report["by_part"].get(part, 0)
        if not size:
            continue
        storages = ", ".join(
            f"{kind} {format_bytes(b)}" for kind, b in report["by_part_storage"][part].items() if b
        )
        lines.append(
            f"  {part:<11} {format_bytes(size):>11} {100 * size / total:5.1f}%  ({storages})"
        )
    kinds = ", ".join(f"{k} {format_bytes(v)}" for k, v in report["by_storage"].items() if v)
    lines.append(f"  by storage: {kinds}")
    return "\n".join(lines)
