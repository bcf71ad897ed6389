"""One model over several devices: accelerate's big-model placement (`--device-map auto`).

A model bigger than one GPU is spread, whole decoder layers at a time, over the GPUs its
process sees (under Ray: the GPUs of its worker), then the CPU if `--max-memory` allows it.

Supported (everything else is refused with one line before anything loads):

- `--quantization none`: accelerate places the checkpoint as it loads
  (`from_pretrained(device_map="auto", max_memory=...)`);
- `--quantization nf4`: the map is planned at NF4 sizes (accelerate's `infer_auto_device_map`),
  each decoder layer is quantized onto its own device, and accelerate's hooks carry the
  activations from device to device;
- refused: `--quantization int8`, and `--device` other than `auto` (the map decides).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from moee_pipeline.errors import MoeeError

DEVICE_MAPS = ("auto",)
_SIZE = re.compile(r"^\d+(\.\d+)?\s*([KMGT]i?B)?$", re.IGNORECASE)


class PlacementError(MoeeError, ValueError):
    """An unsupported or malformed --device-map / --max-memory; the message says what works."""


@dataclass(frozen=True)
class Placement:
    """`--device-map` and `--max-memory` as given: device key ("cpu", "gpu", "0", ...) -> size."""

    device_map: str | None = None
    max_memory: tuple[tuple[str, str], ...] = ()


def parse_max_memory(value: str | None) -> tuple[tuple[str, str], ...]:
    """`gpu=20GiB,cpu=64GiB` or `0=20GiB,1=40GiB,cpu=64GiB` -> ((key, size), ...).

    `gpu` stands for every GPU the process sees; an integer for one GPU.
    """
    if not value:
        return ()
    pairs: list[tuple[str, str]] = []
    for item in (v.strip() for v in value.split(",") if v.strip()):
        key, sep, size = item.partition("=")
        key, size = key.strip().lower(), size.strip()
        if not sep or not (key in {"cpu", "gpu"} or key.isdigit()) or not _SIZE.match(size):
            raise PlacementError(
                f"--max-memory {item!r}: use DEVICE=SIZE pairs, DEVICE gpu, cpu or a GPU index, "
                "e.g. gpu=20GiB,cpu=64GiB"
            )
        pairs.append((key, size))
    return tuple(pairs)


def check_placement(placement: Placement, *, quantization: str | None, device: str) -> None:
    """Refuse the combinations that are not supported, before anything loads.

    `quantization` None is the device's default, never int8: no GPU check (no torch) needed.
    """
    if placement.device_map is None:
        if placement.max_memory:
            raise PlacementError("--max-memory needs --device-map auto")
        return
    if placement.device_map not in DEVICE_MAPS:
        raise PlacementError(f"--device-map {placement.device_map!r}: only 'auto' is supported")
    if quantization == "int8":
        raise PlacementError("--device-map auto works with --quantization nf4 or none, not int8")
    if device != "auto":
        raise PlacementError(f"--device-map auto places the model itself: drop --device {device}")


def max_memory(placement: Placement, *, gpu_count: int) -> dict[int | str, int] | None:
    """The `max_memory` mapping for accelerate: `gpu` expanded to every visible GPU, in bytes."""
    if not placement.max_memory:
        return None
    from accelerate.utils import get_max_memory

    given: dict[int | str, str] = {}
    for key, size in placement.max_memory:
        if key == "gpu":
            given.update(dict.fromkeys(range(gpu_count), size))
        elif key == "cpu":
            given["cpu"] = size
        else:
            index = int(key)
            if index >= gpu_count:
                raise PlacementError(
                    f"--max-memory names GPU {index} but this process sees {gpu_count} GPU(s)"
                )
            given[index] = size
    return get_max_memory(given)


def quantized_device_map(
    model: Any, *, limits: Mapping[int | str, int] | None, dtype: Any
) -> dict[str, int | str]:
    """Where each module goes, planned by accelerate at the size it will have after NF4.

    The model is still unquantized on the CPU: weights that will be quantized are counted at
    4 bits, the others (routers, embeddings, norms) at `dtype`. Decoder layers are never split.
    """
    import torch
    from accelerate import infer_auto_device_map

    from moee_pipeline.models.quantize import quantizable_linear, quantizable_parameter

    kept: dict[str, Any] = {}
    for name, module in model.named_modules():
        quantized_linear = quantizable_linear(name, module)
        for param_name, param in module.named_parameters(recurse=False):
            full = f"{name}.{param_name}" if name else param_name
            is_weight = quantized_linear and param_name == "weight"
            if not is_weight and not quantizable_parameter(name, param_name, param):
                kept[full] = dtype
    return infer_auto_device_map(
        model,
        max_memory=dict(limits) if limits else None,
        no_split_module_classes=list(getattr(model, "_no_split_modules", None) or []),
        dtype=getattr(torch, "int4", torch.int8),
        special_dtypes=kept,
    )


def dispatch(model: Any, device_map: Mapping[str, int | str]) -> None:
    """Hooks that carry activations from one device to the next (accelerate's dispatch)."""
    from accelerate import dispatch_model

    if len(set(device_map.values())) > 1:
        dispatch_model(model, device_map=dict(device_map))
