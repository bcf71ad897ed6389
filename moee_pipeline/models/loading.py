"""Loading an MoE model for feature extraction: device, dtype, quantization, tokenizer.

Only the base model is loaded (`AutoModel`): the LM head is never needed, so it is never
loaded or computed.

Quantized loads (`nf4`, `int8`) read the checkpoint unquantized into CPU memory and
quantize it block by block onto the device (`moee_pipeline.models.quantize`): fused expert
weights are quantized too, and the GPU never holds the bf16 model. Before anything is
loaded, the weight memory is estimated from the config and checked against the GPU's free
memory. Checkpoints of architectures transformers lacks but can express exactly (DeepSeekMoE)
are loaded through a native mapping (`NATIVE_MAPPINGS`) instead of remote code.
"""

from __future__ import annotations

import logging
import pickle
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
from huggingface_hub.errors import StrictDataclassError
from safetensors import SafetensorError
from transformers import (
    AutoConfig,
    AutoModel,
    AutoTokenizer,
    PreTrainedModel,
    PreTrainedTokenizerBase,
)

from moee_pipeline.errors import first_line
from moee_pipeline.models import checkpoint, deepseek, memory, placement, quantize
from moee_pipeline.models.names import DTYPE_NAMES, QUANTIZATIONS, Quantization
from moee_pipeline.models.quiet import quiet_transformers
from moee_pipeline.models.routers import Router, find_routers
from moee_pipeline.models.spec import ModelLoadError, ModelSpec
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


@dataclass(frozen=True)
class NativeMapping:
    """How to load a checkpoint of an architecture transformers lacks through one it has."""

    source_model_type: str
    target_model_type: str
    config: Callable[[dict[str, Any]], Any]
    key_mapping: dict[str, str]
    finish_loading: Callable[[torch.nn.Module], Any]
    expected_missing: tuple[str, ...] = ()  # key endings `finish_loading` fills in


#: Checkpoint `model_type` -> native mapping (used unless --trust-remote-code is given).
NATIVE_MAPPINGS: dict[str, NativeMapping] = {
    deepseek.MODEL_TYPE: NativeMapping(
        source_model_type=deepseek.MODEL_TYPE,
        target_model_type="qwen2_moe",
        config=deepseek.qwen2moe_config,
        key_mapping=deepseek.KEY_MAPPING,
        finish_loading=deepseek.finish_loading_,
        expected_missing=("shared_expert_gate.weight",),
    )
}

#: GPU memory needed beyond the weights: CUDA context, a batch's activations, allocator slack.
RUNTIME_RESERVE_BYTES = int(1.5 * memory.GIB)


def _hub_kwargs(spec: ModelSpec) -> dict[str, Any]:
    return {"revision": spec.revision, "trust_remote_code": spec.trust_remote_code}


def _read_tokenizer(spec: ModelSpec) -> PreTrainedTokenizerBase:
    try:
        return AutoTokenizer.from_pretrained(spec.model, **_hub_kwargs(spec))
    except (ValueError, KeyError):
        # A checkpoint whose model_type transformers does not know (loaded through a
        # native mapping) and whose tokenizer_config names no class: load tokenizer.json.
        from transformers import PreTrainedTokenizerFast

        return PreTrainedTokenizerFast.from_pretrained(spec.model, revision=spec.revision or "main")


def load_tokenizer(spec: ModelSpec) -> PreTrainedTokenizerBase:
    """The model's tokenizer, set up for left padding (features are read at the last position).

    Raises:
        ModelLoadError: its files cannot be read, or there are none: without them transformers
            builds a tokenizer of the config's class with an empty vocabulary, which encodes
            every text to nothing (each task would then fail, one after another).
    """
    folder = checkpoint.local_folder(spec.model)
    if folder is not None:
        checkpoint.check_tokenizer_files(folder)
    try:
        tokenizer = _read_tokenizer(spec)
    except Exception as error:  # the tokenizers library raises a bare Exception on a bad file
        logger.info("loading the tokenizer of %s failed", spec.model, exc_info=True)
        raise ModelLoadError(
            f"cannot load the tokenizer of {spec.model} ({type(error).__name__}: "
            f"{first_line(error, limit=70)}): it needs {checkpoint.TOKENIZER_FILES}"
        ) from error
    if not tokenizer("a b", add_special_tokens=False)["input_ids"]:
        raise ModelLoadError(
            f"{spec.model} has no tokenizer: it encodes text to no tokens; put the model's "
            f"{checkpoint.TOKENIZER_FILES} in it"
        )
    tokenizer.padding_side = "left"
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token or tokenizer.unk_token
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token_id = 0
    return tokenizer


def _not_found(spec: ModelSpec, error: Exception) -> ModelLoadError:
    logger.info("loading the config of %s: %s", spec.model, error)
    return ModelLoadError(
        f"cannot load model {spec.model!r}: not a local folder, nor on the Hugging Face Hub "
        f"(offline? a typo?); download it (`hf download {spec.model}`) or pass a local folder"
    )


def _config_error(spec: ModelSpec, error: Exception) -> ModelLoadError:
    """A config that cannot be read or used: a local folder's names its file, never the Hub;
    a Hub id's is "not found" only when it could not be fetched."""
    folder = checkpoint.local_folder(spec.model)
    if folder is None and isinstance(error, OSError):
        return _not_found(spec, error)
    logger.info("the config of %s: %s", spec.model, error)
    named = f"the config of {spec.model}" if folder is None else folder / checkpoint.CONFIG
    cause = first_line(error)
    if folder is not None:  # the line names the folder already: the cause need not again
        cause = cause.replace(str(folder), folder.name)
    if len(cause) > 90:
        cause = cause[:87].rstrip() + "..."
    return ModelLoadError(
        f"{named} cannot be used ({type(error).__name__}: {cause}): "
        "fix it or download the model again"
    )


def native_mapping(spec: ModelSpec) -> NativeMapping | None:
    """The native mapping for the checkpoint's model_type, or None (transformers knows it).

    A local folder's config.json is checked first: transformers reports one that does not
    parse as if the folder were a Hub id that does not exist.
    """
    folder = checkpoint.local_folder(spec.model)
    if folder is not None:
        checkpoint.check_config(folder)
    if spec.trust_remote_code:
        return None
    from transformers import PretrainedConfig

    try:
        raw, _ = PretrainedConfig.get_config_dict(spec.model, revision=spec.revision)
    except (OSError, ValueError) as error:
        raise _config_error(spec, error) from error
    return NATIVE_MAPPINGS.get(raw.get("model_type", ""))


#: What a config whose values transformers rejects raises: a bad type, a bad value.
_CONFIG_ERRORS = (OSError, ValueError, TypeError, StrictDataclassError)


def load_config(spec: ModelSpec) -> Any:
    """The model's config (mapped, for a native mapping); a clear error when it is missing.

    An architecture transformers does not know asks for --trust-remote-code only where the
    config names code of its own (`auto_map`, or any Hub id); a local folder's other config
    errors (a misspelt model_type, a size that is not a number) name its config.json.
    """
    mapping = native_mapping(spec)
    try:
        if mapping is None:
            return AutoConfig.from_pretrained(spec.model, **_hub_kwargs(spec))
        from transformers import PretrainedConfig

        raw, _ = PretrainedConfig.get_config_dict(spec.model, revision=spec.revision)
        config = mapping.config(raw)
    except _CONFIG_ERRORS as error:
        folder = checkpoint.local_folder(spec.model)
        unknown = "trust_remote_code" in str(error) or "does not recognize" in str(error)
        if unknown and (folder is None or checkpoint.has_own_code(folder)):
            raise ModelLoadError(
                f"{spec.model!r} is an architecture transformers does not know: pass "
                "--trust-remote-code to run the model's own Hub code"
            ) from error
        raise _config_error(spec, error) from error
    config._commit_hash = raw.get("_commit_hash")
    return config


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
    "unexpected" lm_head on every load; a missing weight, though, would leave a layer random.
    A weight whose shape differs from the config's is loaded as reported, not raised, so that
    the line can name it (transformers raises pointing at a table that quiet loading hides).

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
    mismatched = sorted(info.get("mismatched_keys") or ())
    if mismatched:
        key, stored, wanted = mismatched[0]
        named = f"the config of {spec.model}" if folder is None else folder / checkpoint.CONFIG
        raise ModelLoadError(
            f"{named} does not match the weights "
            f"({len(mismatched)} differ): {key} is {tuple(stored)} in them, {tuple(wanted)} "
            "in the config; fix it or re-download"
        )
    expected_missing = mapping.expected_missing if mapping is not None else ()
    missing = sorted(k for k in info["missing_keys"] if not k.endswith(expected_missing))
    if missing:
        raise ModelLoadError(
            f"{spec.model}: the checkpoint lacks {len(missing)} weight(s) the config needs, e.g. "
            f"{missing[0]}; download the model again or fix config.json"
        )
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
    kwargs: dict[str, Any] = {"dtype": dtype, **_hub_kwargs(spec)}
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
