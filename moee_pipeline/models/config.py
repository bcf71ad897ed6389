"""A model's config: read with its folder's file checked first, mapped where it must be.

transformers reports a local config.json it cannot use as it reports a Hub id that does not
exist, or asks for --trust-remote-code for a misspelt model_type; here a local folder's errors
name its config.json, and a Hub id is "not found" only when it could not be fetched.
Checkpoints of architectures transformers lacks but can express exactly (DeepSeekMoE) are read
through a native mapping (`NATIVE_MAPPINGS`) instead of remote code.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from huggingface_hub.errors import StrictDataclassError
from transformers import AutoConfig

from moee_pipeline.errors import first_line
from moee_pipeline.models import checkpoint, deepseek
from moee_pipeline.models.spec import ModelLoadError, ModelSpec

logger = logging.getLogger(__name__)


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
            return AutoConfig.from_pretrained(spec.model, **spec.hub_kwargs())
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
