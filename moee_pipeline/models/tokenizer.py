"""The model's tokenizer, loaded before its weights: a folder without one fails in seconds.

Without tokenizer files transformers still builds a tokenizer, of the class the config names,
with an empty vocabulary: it encodes every text to nothing, and every task would fail in turn
("prompted text(s) have no tokens") after the model had loaded. So a tokenizer that turns text
into no tokens is refused here, naming the files a tokenizer is made from.
"""

from __future__ import annotations

import logging

from transformers import AutoTokenizer, PreTrainedTokenizerBase

from moee_pipeline.errors import first_line
from moee_pipeline.models import checkpoint
from moee_pipeline.models.spec import ModelLoadError, ModelSpec

logger = logging.getLogger(__name__)


def _read_tokenizer(spec: ModelSpec) -> PreTrainedTokenizerBase:
    try:
        return AutoTokenizer.from_pretrained(spec.model, **spec.hub_kwargs())
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
