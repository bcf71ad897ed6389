"""One forward pass per batch, pooled features captured by router (and layer) hooks.

Each router gets a forward pre-hook that sees its input (the post-attention, pre-MoE
hidden states). Router logits are affine in that input, so the mean of the logits over the
real tokens equals the router applied to the mean input: the hook pools first and applies
the router weight to two vectors per text, never to every token. With `--hs-layers all`,
every decoder layer but the last gets a forward hook that pools its output the same way, on
the layer's own device; the last layer's entry is the final norm's output, as in transformers'
`output_hidden_states`. Only pooled float32 vectors leave the device.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch

from moee_pipeline.errors import MoeeError
from moee_pipeline.models.loading import LoadedModel
from moee_pipeline.models.routers import Router


class NonFiniteFeatureError(MoeeError, ValueError):
    """A feature came out NaN or inf; never cache it silently."""


@dataclass(frozen=True)
class PooledBatch:
    """Pooled features of one batch, rows in batch order, float32 on the CPU.

    `hs_layers_*` (every decoder layer's hidden state, layer-major) only with `--hs-layers all`.
    """

    rw_last: np.ndarray
    rw_mean: np.ndarray
    hs_last: np.ndarray
    hs_mean: np.ndarray
    hs_layers_last: np.ndarray | None = None
    hs_layers_mean: np.ndarray | None = None

    def arrays(self) -> dict[str, np.ndarray]:
        """Every feature this batch holds, by its cache column name."""
        found = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        return {name: array for name, array in found.items() if array is not None}


def _masked_mean(hidden: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    weights = mask.to(torch.float32).unsqueeze(-1)
    return (hidden.float() * weights).sum(dim=1) / weights.sum(dim=1).clamp_min(1.0)


class LayerCapture:
    """Forward hooks that pool each decoder layer's output at the last token and over real
    tokens, on the layer's device; the last layer's entry is pooled from the final norm's
    output (`collect`), so it equals `hs_last`/`hs_mean` exactly."""

    def __init__(self, layers: Sequence[torch.nn.Module]) -> None:
        self.layers = list(layers)
        self._mask: torch.Tensor | None = None
        hooked = max(len(self.layers) - 1, 0)
        self._last: list[torch.Tensor | None] = [None] * hooked
        self._mean: list[torch.Tensor | None] = [None] * hooked

    def hooks(self) -> list[torch.utils.hooks.RemovableHandle]:
        """Register the hooks (every layer but the last); the caller removes them."""
        return [
            layer.register_forward_hook(self._make_hook(slot))
            for slot, layer in enumerate(self.layers[:-1])
        ]

    def _make_hook(self, slot: int) -> Callable[[torch.nn.Module, object, object], None]:
        def hook(_module: torch.nn.Module, _args: object, output: object) -> None:
            mask = self._mask
            assert mask is not None, "set_mask() must be called before the forward pass"
            hidden = output[0] if isinstance(output, tuple) else output
            assert isinstance(hidden, torch.Tensor), type(hidden)
            hidden = hidden.reshape(mask.shape[0], mask.shape[1], -1)
            self._last[slot] = hidden[:, -1].float()
            self._mean[slot] = _masked_mean(hidden, mask.to(hidden.device))

        return hook

    def set_mask(self, attention_mask: torch.Tensor) -> None:
        self._mask = attention_mask
        self._last = [None] * len(self._last)
        self._mean = [None] * len(self._mean)

    def collect(
        self, last_hidden: torch.Tensor, mask: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Layer-major (batch, n_layers * hidden) states at the last token and mean-pooled,
        the last layer's from `last_hidden` (the final norm's output)."""
        if any(x is None for x in self._last):
            missing = [i for i, x in enumerate(self._last) if x is None]
            raise RuntimeError(f"decoder layers were not called in the forward pass: {missing}")
        home = last_hidden.device  # a model spread over devices has layers on several
        last = [x.to(home) for x in self._last if x is not None]
        mean = [x.to(home) for x in self._mean if x is not None]
        last.append(last_hidden[:, -1].float())
        mean.append(_masked_mean(last_hidden, mask.to(home)))
        return torch.cat(last, dim=1), torch.cat(mean, dim=1)


class RouterCapture:
    """Forward pre-hooks that pool each router's input at the last token and over real tokens;
    with `layers` (`--hs-layers all`) also every decoder layer's output (`LayerCapture`)."""

    def __init__(self, routers: Sequence[Router], layers: Sequence[torch.nn.Module] = ()) -> None:
        self.routers = list(routers)
        self.layers = LayerCapture(layers) if layers else None
        self._mask: torch.Tensor | None = None
        self._last: list[torch.Tensor | None] = [None] * len(self.routers)
        self._mean: list[torch.Tensor | None] = [None] * len(self.routers)
        self._handles: list[torch.utils.hooks.RemovableHandle] = []

    def __enter__(self) -> RouterCapture:
        for slot, router in enumerate(self.routers):
            hook = self._make_hook(slot)
            self._handles.append(router.module.register_forward_pre_hook(hook))
        if self.layers is not None:
            self._handles.extend(self.layers.hooks())
        return self

    def __exit__(self, *exc: object) -> None:
        for handle in self._handles:
            handle.remove()
        self._handles.clear()

    def _make_hook(self, slot: int) -> Callable[[torch.nn.Module, tuple[torch.Tensor, ...]], None]:
        router = self.routers[slot]

        def hook(_module: torch.nn.Module, args: tuple[torch.Tensor, ...]) -> None:
            mask = self._mask
            assert mask is not None, "set_mask() must be called before the forward pass"
            hidden = args[0].reshape(mask.shape[0], mask.shape[1], -1)
            self._last[slot] = router.logits(hidden[:, -1])
            # a model spread over devices (--device-map auto) has layers on several
            self._mean[slot] = router.logits(_masked_mean(hidden, mask.to(hidden.device)))

        return hook

    def set_mask(self, attention_mask: torch.Tensor) -> None:
        self._mask = attention_mask
        self._last = [None] * len(self.routers)
        self._mean = [None] * len(self.routers)
        if self.layers is not None:
            self.layers.set_mask(attention_mask)

    def collect(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Layer-major (batch, n_layers * n_experts) logits at the last token and mean-pooled."""
        if any(x is None for x in self._last):
            missing = [r.name for r, x in zip(self.routers, self._last, strict=True) if x is None]
            raise RuntimeError(f"routers were not called in the forward pass: {missing}")
        last = [x for x in self._last if x is not None]
        mean = [x for x in self._mean if x is not None]
        home = last[0].device  # a model spread over devices returns logits on several
        last = [x.to(home) for x in last]
        mean = [x.to(home) for x in mean]
        return torch.cat(last, dim=1), torch.cat(mean, dim=1)


@torch.inference_mode()
def forward_pooled(
    loaded: LoadedModel,
    capture: RouterCapture,
    input_ids: torch.Tensor,
    attention_mask: torch.Tensor,
) -> PooledBatch:
    """Run the base model on one left-padded batch and pool its features."""
    input_ids = input_ids.to(loaded.device)
    attention_mask = attention_mask.to(loaded.device)
    capture.set_mask(attention_mask)
    output = loaded.model(input_ids=input_ids, attention_mask=attention_mask, use_cache=False)
    hidden = output.last_hidden_state
    rw_last, rw_mean = capture.collect()
    mask = attention_mask.to(hidden.device)
    tensors = {
        "rw_last": rw_last,
        "rw_mean": rw_mean,
        "hs_last": hidden[:, -1].float(),
        "hs_mean": _masked_mean(hidden, mask),
    }
    if capture.layers is not None:
        tensors["hs_layers_last"], tensors["hs_layers_mean"] = capture.layers.collect(hidden, mask)
    return PooledBatch(
        **{name: t.detach().to("cpu", torch.float32).numpy() for name, t in tensors.items()}
    )


def check_finite(batch: PooledBatch, texts: Sequence[str]) -> None:
    """Raise naming the first text whose features are NaN or inf."""
    for name, array in batch.arrays().items():
        bad = ~np.isfinite(array).all(axis=1)
        if bad.any():
            index = int(np.flatnonzero(bad)[0])
            raise NonFiniteFeatureError(
                f"{name} is NaN/inf for {int(bad.sum())} text(s) in a batch, e.g. "
                f"{texts[index][:60]!r}; try --dtype float32 or --quantization none"
            )
