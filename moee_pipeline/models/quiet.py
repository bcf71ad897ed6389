"""Keeping transformers' own output off the terminal while a model loads or is saved; with
`moee -v` it is left alone (`moee_pipeline.verbosity`).

transformers draws a bar for loading the weights ("Loading weights") and for saving them
("Writing model shards"), and warns with a table of every checkpoint key the base model does
not use (the LM head, on every load). We report what matters ourselves: missing weights are an
error, the weight memory is logged and stored in the manifest. The Hub's download bars stay on:
a first download of a large model takes minutes, and we have no bar of our own for it.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from huggingface_hub import utils as hub_utils
from transformers.utils import logging as hf_logging

from moee_pipeline.verbosity import library_output_shown


@contextlib.contextmanager
def quiet_transformers() -> Iterator[None]:
    """No transformers progress bars or warnings inside (unless `-v`); the Hub's download bars
    and every switch as it was are restored afterwards."""
    if library_output_shown():
        yield
        return
    verbosity = hf_logging.get_verbosity()
    bars = hf_logging.is_progress_bar_enabled()
    hub_bars = not hub_utils.are_progress_bars_disabled()
    hf_logging.set_verbosity_error()
    if bars:
        hf_logging.disable_progress_bar()  # turns the Hub's bars off as well
        if hub_bars:
            hub_utils.enable_progress_bars()
    try:
        yield
    finally:
        hf_logging.set_verbosity(verbosity)
        if bars:
            hf_logging.enable_progress_bar()  # turns the Hub's bars on as well
            if not hub_bars:
                hub_utils.disable_progress_bars()
