"""Loading an MoE model for feature extraction: device, dtype, quantization, tokenizer.

Only the base model is loaded (`AutoModel`): the LM head is never needed, so it is never
loaded or computed.

Quantized loads (`nf4`, `int8`) read the checkpoint unquantized into CPU memory and
quantize it block by block onto the device (`moee_pipeline.models.quantize`): fused expert
weights are quantized too, and the GPU never holds the bf16 model. Before anything is
loaded, the weight memory is estimated from the config and checked against the GPU's free
memory. Checkpoints of architectures transformers lacks but can express exactly (DeepSeekMoE)
are loaded through a native mapping (`moee_pipeline.models.config`) instead of remote code.
The config, the tokenizer (`models/tokenizer.py`) and a local folder's files
(`models/checkpoint.py`) are checked before the weights are read.
"""

from __future__ import annotations

import logging
import pickle
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
from safetensors import SafetensorError
from transformers import AutoModel, PreTrainedModel, PreTrainedTokenizerBase

from moee_pipeline.errors import first_line
from moee_pipeline.models import checkpoint, memory, placement, quantize
from moee_pipeline.models.config import NativeMapping, load_config, native_mapping
from moee_pipeline.models.layers import find_decoder_layers
from moee_pipeline.models.names import DTYPE_NAMES, QUANTIZATIONS, Quantization
from moee_pipeline.models.quiet import quiet_transformers
from moee_pipeline.models.routers import Router, find_routers
from moee_pipeline.models.spec import ModelLoadError, ModelSpec
from moee_pipeline.models.tokenizer import load_tokenizer
from moee_pipeline.units import format_bytes

logger = logging.getLogger(__name__)

DTYPES = dict(zip(DTYPE_NAMES, (torch.bfloat16, torch.float16, torch.float32), strict=True))


@dataclass
class LoadedModel:
    """A ready model: the base transformer, its tokenizer (left padding) and its routers."""

    spec: ModelSpec
    model: PreTrainedModel
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

    @property
    def decoder_layers(self) -> list[torch.nn.Module]:
        """Every decoder layer, in order (dense ones too): where `--hs-layers all` hooks."""
        return find_decoder_layers(self.model, self.routers)


#: GPU memory needed beyond the weights: CUDA context, a batch's activations, allocator slack.
RUNTIME_RESERVE_BYTES = int(1.5 * memory.GIB)


# ---------------------------------------------------------------------------------------
# Memory pre-check
# ---------------------------------------------------------------------------------------


def required_device_bytes(estimate: dict[str, Any], quantization: str) -> int:
    """GPU memory a load needs: weights, one layer dequantized or in transit, a reserve."""
    transient = int(estimate.get("largest_layer_bytes", 0)) if quantization != "none" else 0
    return int(estimate["total_bytes"]) + transient + RUNTIME_RESERVE_BYTES


def check_fits(
    model: str,
    *,
    quantization: str,
    estimate: Callable[[str], dict[str, Any]],
    free_bytes: int,
    device: str,
) -> int:
    """Raise a one-line error naming what fits when the model does not fit in `free_bytes`.

    Returns:
        The bytes needed with `quantization`.

    Raises:
        ModelLoadError: the estimated need exceeds the free memory.
    """
    need = required_device_bytes(estimate(quantization), quantization)
    if need <= free_bytes:
        return need
    fits = []
    for other in QUANTIZATIONS:
        if other != quantization:
            other_need = required_device_bytes(estimate(other), other)
            if other_need <= free_bytes:
                fits.append(f"--quantization {other} (~{format_bytes(other_need)})")
    advice = (
        f"use {' or '.join(fits)}"
        if fits
        else "no quantization fits: use a GPU with more memory, or --device cpu (slow)"
    )
    raise ModelLoadError(
        f"{model} needs about {format_bytes(need)} of GPU memory with --quantization "
        f"{quantization} (weights {format_bytes(estimate(quantization)['total_bytes'])}"
        f" + runtime), but {device} has {format_bytes(free_bytes)} free; {advice}"
    )


def _precheck(spec: ModelSpec, config: Any, quantization: str, dtype: torch.dtype) -> None:
    device = spec.resolved_device()
    if device.type != "cuda" and quantization == "none":
        return  # nothing to check: building the meta model costs seconds on a small run
    estimates: dict[str, dict[str, Any]] = {}

    def estimate(q: str) -> dict[str, Any]:
        if q not in estimates:
            estimates[q] = memory.estimate_weight_memory(config, quantization=q, dtype=dtype)
        return estimates[q]

    try:
        estimate(quantization)
    except Exception as error:  # remote-code or unusual configs: no estimate, no check
        logger.info("no weight-memory estimate for %s: %s", spec.model, error)
        return
    if quantization != "none":
        _warn_host_memory(spec, estimate("none"))
    if device.type == "cuda":
        free, _total = torch.cuda.mem_get_info(device)
        check_fits(
            spec.model,
            quantization=quantization,
            estimate=estimate,
            free_bytes=free,
            device=str(device),
        )


def _warn_host_memory(spec: ModelSpec, unquantized: dict[str, Any]) -> None:
    try:
        import psutil

        available = psutil.virtual_memory().available
    except Exception:  # pragma: no cover - psutil missing or unsupported platform
        return
    if unquantized["total_bytes"] > available:
        logger.warning(
            "%s is read unquantized into CPU memory before it is quantized: that needs about "
            "%s, and %s is available",
            spec.model,
            format_bytes(unquantized["total_bytes"]),
            format_bytes(available),
        )


# ---------------------------------------------------------------------------------------
# Loading
# ---------------------------------------------------------------------------------------


def _from_pretrained(
    spec: ModelSpec, config: Any, mapping: NativeMapping | None, kwargs: dict[str, Any]
) -> PreTrainedModel:
    """Load the base model; we report what was left out ourselves, not transformers' table.

    The base model never has the checkpoint's LM head, so transformers would warn about an
    "unexpected" lm_head on every load; a missing weight, though, would leave a layer random,
    and one whose shape differs from the config's is refused by name (`check_loading_info`).

    Raises:
        ModelLoadError: a weight file is missing, damaged or cut short; the config and the
            weights disagree (a shape, or a weight the config needs and the files lack).
    """
    folder = checkpoint.local_folder(spec.model)
    if folder is not None:
        checkpoint.check_weights(folder)
    if mapping is not None:
        kwargs = {**kwargs, "key_mapping": mapping.key_mapping}
    try:
        with quiet_transformers():
            model, info = AutoModel.from_pretrained(
                spec.model,
                config=config,
                output_loading_info=True,
                ignore_mismatched_sizes=True,
                **kwargs,
            )
    except torch.OutOfMemoryError:
        raise  # not a file problem: the memory pre-check's estimate was short
    except (OSError, ValueError, RuntimeError, SafetensorError, pickle.UnpicklingError) as error:
        # files of a Hub download or a torch checkpoint, which the folder checks do not read
        logger.info("loading the weights of %s failed", spec.model, exc_info=True)
        raise ModelLoadError(
            f"cannot load the weights of {spec.model} ({type(error).__name__}: "
            f"{first_line(error, limit=90)}): check its files, or download the model again"
        ) from error
    expected_missing = mapping.expected_missing if mapping is not None else ()
    checkpoint.check_loading_info(spec.model, info, expected_missing=expected_missing)
    unexpected = sorted(k for k in info["unexpected_keys"] if not k.startswith("lm_head"))
    if unexpected:
        logger.warning("%s: %d checkpoint weights unused, e.g. %s", spec.model, len(unexpected),
                       unexpected[:3])  # fmt: skip
    if mapping is not None:
        mapping.finish_loading(model)
        logger.info("%s loaded as %s", mapping.source_model_type, mapping.target_model_type)
    return model


def load_model(spec: ModelSpec) -> LoadedModel:
    """Load the base model, its tokenizer and find its routers.

    Raises:
        ModelLoadError: the model cannot be found or loaded, or does not fit the GPU.
        NotMoEError: the model has no expert router.
    """
    mapping = native_mapping(spec)
    config = load_config(spec)
    tokenizer = load_tokenizer(spec)  # before the model: a folder without one fails in seconds
    device = spec.resolved_device()
    quantization = spec.resolved_quantization()
    dtype_name = spec.resolved_dtype()
    dtype = DTYPES[dtype_name]
    where = placement.Placement(spec.device_map, spec.max_memory)
    placement.check_placement(where, quantization=quantization, device=spec.device)
    if spec.device_map is None:  # a spread model is checked by accelerate's own plan
        _precheck(spec, config, quantization, dtype)
    kwargs: dict[str, Any] = {"dtype": dtype, **spec.hub_kwargs()}
    limits = placement.max_memory(where, gpu_count=torch.cuda.device_count())
    if quantization == "none" and spec.device_map is not None:
        kwargs.update(device_map=spec.device_map, max_memory=limits)
    elif quantization == "none" and device.type == "cuda":
        kwargs["device_map"] = {"": device.index or 0}
    logger.info("loading %s (%s, %s) on %s", spec.model, quantization, dtype_name, device)
    model = _from_pretrained(spec, config, mapping, kwargs)
    if quantization == "none" and spec.device_map is None:
        # transformers wraps .to() in a decorator whose signature mypy misreads
        model.to(device)  # type: ignore[arg-type]
    elif quantization != "none":
        device_map = None
        if spec.device_map is not None:
            device_map = placement.quantized_device_map(model, limits=limits, dtype=dtype)
        quantize.quantize_model_(
            model, method=quantization, device=device, compute_dtype=dtype, device_map=device_map
        )
        if device_map is not None:
            placement.dispatch(model, device_map)
    if spec.device_map is not None:
        device = next(model.get_input_embeddings().parameters()).device  # where batches go in
        logger.info("placed over %s", sorted({str(p.device) for p in model.parameters()}))
    model.eval()
    hidden_size = int(model.config.hidden_size)
    routers = find_routers(model, hidden_size=hidden_size)
    report = memory.weight_memory(model)
    # returned in `info` (every manifest stores it; `moee extract` prints it from there) and logged
    logger.info("%s", memory.format_report(report, title=f"{spec.model} [{quantization}]"))
    info: dict[str, Any] = {
        "revision": getattr(config, "_commit_hash", None) or spec.revision,
        "weight_memory": report,
    }
    if mapping is not None:
        info["checkpoint_model_type"] = mapping.source_model_type
    return LoadedModel(
        spec=spec,
        model=model,
        tokenizer=tokenizer,
        routers=routers,
        device=device,
        quantization=quantization,
        dtype=dtype_name,
        info=info,
    )
