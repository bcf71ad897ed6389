"""Finding the expert routers of any transformers MoE model.

A router is the module that scores every token against every routed expert. Across
architectures it is a child named `gate` (OLMoE, Qwen-MoE, Mixtral, DeepSeek, remote-code
MoEGate) or `router` (GPT-OSS and others) inside a decoder layer, holding a 2-D weight of
shape (num_experts, hidden). Its pre-softmax logits are `F.linear(input, weight, bias)`.
Gates that score one output (Qwen's `shared_expert_gate`) and dense `gate_proj` layers are
not routers.
"""

from __future__ import annotations

import re
import reprlib
from dataclasses import dataclass

import torch
from torch import nn

from moee_pipeline.errors import MoeeError

ROUTER_NAMES = ("gate", "router")
_LAYER_INDEX = re.compile(r"(?:^|\.)(?:layers|h|blocks)\.(\d+)\.")


class NotMoEError(MoeeError, ValueError):
    """The model has no expert router, so there are no routing weights to extract."""


@dataclass(frozen=True)
class Router:
    """One MoE layer's router."""

    layer: int
    name: str
    module: nn.Module

    @property
    def weight(self) -> torch.Tensor:
        weight = self.module.weight
        if not isinstance(weight, torch.Tensor):
            raise TypeError(f"router {self.name} has no weight tensor")
        return weight

    @property
    def bias(self) -> torch.Tensor | None:
        bias = getattr(self.module, "bias", None)
        return bias if isinstance(bias, torch.Tensor) else None

    @property
    def n_experts(self) -> int:
        return int(self.weight.shape[0])

    def logits(self, hidden: torch.Tensor) -> torch.Tensor:
        """Router logits in float32 for hidden states (..., hidden)."""
        bias = None if self.bias is None else self.bias.float()
        return nn.functional.linear(hidden.float(), self.weight.float(), bias)


def _is_router(name: str, module: nn.Module, hidden_size: int) -> bool:
    weight = getattr(module, "weight", None)
    return (
        name.rsplit(".", 1)[-1] in ROUTER_NAMES
        and isinstance(weight, torch.Tensor)
        and weight.dim() == 2
        and weight.shape[0] >= 2
        and weight.shape[1] == hidden_size
        and weight.dtype.is_floating_point
    )


def find_routers(model: nn.Module, *, hidden_size: int) -> list[Router]:
    """The routers of a model, one per MoE layer, in layer order.

    Raises:
        NotMoEError: no router was found (a dense model), or routers disagree on the
            number of experts.
    """
    routers = []
    for name, module in model.named_modules():
        if not _is_router(name, module, hidden_size):
            continue
        match = _LAYER_INDEX.search(name)
        if match is None:
            continue
        routers.append(Router(layer=int(match.group(1)), name=name, module=module))
    if not routers:
        raise NotMoEError(
            f"{type(model).__name__} is not a Mixture-of-Experts model: no expert router "
            "(a `gate`/`router` module with a (num_experts, hidden) weight); use an MoE model"
        )
    routers.sort(key=lambda r: r.layer)
    if len({r.layer for r in routers}) != len(routers):
        names = [r.name for r in routers]
        raise NotMoEError(
            f"more than one router per layer (e.g. {names[:2]}): this architecture is not supported"
        )
    if len({r.n_experts for r in routers}) != 1:
        counts = {r.layer: r.n_experts for r in routers}
        raise NotMoEError(
            f"routers disagree on the number of experts ({reprlib.repr(counts)}): "
            "this architecture is not supported"
        )
    return routers
