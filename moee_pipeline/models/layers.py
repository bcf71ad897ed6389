"""Finding the decoder layers of a model: where every layer's hidden state is captured.

transformers' `output_hidden_states` records the output of each decoder layer (entry 0 is the
embedding output, the input of the first layer; the last entry is replaced by the output of the
final norm, `last_hidden_state`). The layers are found where the routers are, by the same
module names (`layers.N`, `h.N`, `blocks.N`): the list that holds the first router's layer is
the model's stack of decoder layers, dense layers included (DeepSeekMoE's layer 0).
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from torch import nn

from moee_pipeline.models.routers import NotMoEError, Router

_LAYER_LIST = re.compile(r"^(?P<list>(?:.*\.)?(?:layers|h|blocks))\.\d+\.")


def find_decoder_layers(model: nn.Module, routers: Sequence[Router]) -> list[nn.Module]:
    """The decoder layers of `model` in order, found from the module name of its routers.

    Raises:
        NotMoEError: no router, or the routers do not sit in one list of layers whose length
            is the config's `num_hidden_layers` (an architecture this package does not know).
    """
    if not routers:
        raise NotMoEError(f"{type(model).__name__} has no routers to find its layers by")
    match = _LAYER_LIST.match(routers[0].name)
    stack = model.get_submodule(match.group("list")) if match else None
    if not isinstance(stack, nn.ModuleList):
        raise NotMoEError(f"cannot find the decoder layers of {type(model).__name__}")
    expected = getattr(getattr(model, "config", None), "num_hidden_layers", None)
    inside = all(r.name.startswith(f"{match.group('list')}.") for r in routers) if match else False
    if not inside or (isinstance(expected, int) and len(stack) != expected):
        raise NotMoEError(
            f"the decoder layers of {type(model).__name__} are not one list of "
            f"num_hidden_layers={expected} layers holding every router: not supported"
        )
    return list(stack)
