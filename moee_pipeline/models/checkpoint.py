"""The files of a local model folder, checked before transformers reads them.

transformers reports a damaged or incomplete folder with whatever its readers raise: a JSON
decoder's position without the file's name, safetensors' "incomplete metadata", a missing
shard's path in a traceback, and for a config.json that does not parse the same error as a Hub
id that does not exist. Each check here reads only what is cheap (JSON files, safetensors
headers) and names the file, the cause and what to do in one line. A Hub id is left to
transformers and its own cache; `loading.py` turns what that raises into one line as well.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from safetensors import SafetensorError, safe_open

from moee_pipeline.errors import first_line
from moee_pipeline.models.spec import ModelLoadError

CONFIG = "config.json"
#: The weight files transformers looks for, in the order it prefers them.
SAFETENSORS = "model.safetensors"
SAFETENSORS_INDEX = "model.safetensors.index.json"
TORCH_BIN = "pytorch_model.bin"
TORCH_BIN_INDEX = "pytorch_model.bin.index.json"
#: The tokenizer's JSON files a folder may hold (each read when present).
TOKENIZER_JSON = (
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "added_tokens.json",
)
#: What a tokenizer is built from, for the error lines (any one of these).
TOKENIZER_FILES = "tokenizer.json, tokenizer.model, or vocab.json and merges.txt"

_AGAIN = "download the model again"


def local_folder(model: str) -> Path | None:
    """The folder `model` names, or None for a Hub id (transformers' own test: a directory)."""
    path = Path(model)
    return path if path.is_dir() else None


def _read_json(path: Path) -> Any:
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise ModelLoadError(f"{path} is not UTF-8 text: {_AGAIN}") from None
    except OSError as error:
        cause = error.strerror or first_line(error)
        raise ModelLoadError(f"cannot read {path} ({cause}): check the file") from None
    try:
        return json.loads(text)
    except ValueError as error:
        where = ""
        if isinstance(error, json.JSONDecodeError):
            where = f": {error.msg} at line {error.lineno} column {error.colno}"
        raise ModelLoadError(f"{path} is not valid JSON{where}; fix it or {_AGAIN}") from None


def check_config(folder: Path) -> None:
    """A folder holds a config.json that parses as a JSON object."""
    path = folder / CONFIG
    if not path.is_file():
        raise ModelLoadError(
            f"{folder} has no {CONFIG}: not a model folder, or an incomplete copy; {_AGAIN}"
        )
    if not isinstance(_read_json(path), dict):
        raise ModelLoadError(f"{path} is not a JSON object of settings: {_AGAIN}")


def has_own_code(folder: Path) -> bool:
    """Whether the folder's config names modeling code of its own (--trust-remote-code)."""
    config = _read_json(folder / CONFIG)
    return isinstance(config, dict) and "auto_map" in config


def check_tokenizer_files(folder: Path) -> None:
    """Every tokenizer JSON file the folder holds parses (which ones suffice is the loader's)."""
    for name in TOKENIZER_JSON:
        if (folder / name).exists():
            _read_json(folder / name)


def _check_safetensors(path: Path) -> None:
    """The file's header parses and its tensors lie inside it (a cut file fails here)."""
    try:
        with safe_open(str(path), framework="pt"):
            return
    except SafetensorError as error:
        cause = first_line(error).removeprefix("Error while deserializing header: ")[:70]
    except OSError as error:
        cause = error.strerror or first_line(error)
    raise ModelLoadError(f"{path} is damaged or cut short ({cause}): {_AGAIN}")


def _index_shards(index: Path) -> list[str]:
    """The shard files a `*.index.json` maps the weights to."""
    data = _read_json(index)
    weight_map = data.get("weight_map") if isinstance(data, dict) else None
    if not isinstance(weight_map, dict) or not all(isinstance(v, str) for v in weight_map.values()):
        raise ModelLoadError(f"{index} has no weight_map of tensor names to files: {_AGAIN}")
    return sorted(set(weight_map.values()))


def check_weights(folder: Path) -> None:
    """The weight files transformers will read are there and whole (safetensors: by header).

    Raises:
        ModelLoadError: no weight file, an index that does not parse or lists a missing shard,
            a safetensors file that is damaged or cut short.
    """
    if (folder / SAFETENSORS).exists():
        _check_safetensors(folder / SAFETENSORS)
        return
    for name in (SAFETENSORS_INDEX, TORCH_BIN, TORCH_BIN_INDEX):
        if not (folder / name).exists():
            continue
        if name.endswith(".json"):
            for shard in _index_shards(folder / name):
                path = folder / shard
                if not path.is_file():
                    raise ModelLoadError(f"{folder / name} lists {shard}, not there: {_AGAIN}")
                if path.suffix == ".safetensors":
                    _check_safetensors(path)
        return  # a pytorch_model.bin is torch's to read: what it raises becomes one line too
    raise ModelLoadError(
        f"{folder} holds no weights: expected {SAFETENSORS} (or {SAFETENSORS_INDEX} with its "
        f"shards); {_AGAIN}"
    )


def check_loading_info(
    model: str, info: dict[str, Any], *, expected_missing: tuple[str, ...] = ()
) -> None:
    """The weights transformers loaded fit the config: no shape differs, none is missing.

    `info` is `from_pretrained(..., output_loading_info=True)`'s, from a load with
    `ignore_mismatched_sizes=True`: a differing shape is then reported, not raised pointing at
    a table that quiet loading hides, so this line can name it. `expected_missing` are the key
    endings a native mapping fills in itself.
    """
    folder = local_folder(model)
    mismatched = sorted(info.get("mismatched_keys") or ())
    if mismatched:
        key, stored, wanted = mismatched[0]
        named = f"the config of {model}" if folder is None else folder / CONFIG
        raise ModelLoadError(
            f"{named} does not match the weights ({len(mismatched)} differ): {key} is "
            f"{tuple(stored)} in them, {tuple(wanted)} in the config; fix it or re-download"
        )
    missing = sorted(k for k in info["missing_keys"] if not k.endswith(expected_missing))
    if missing:
        raise ModelLoadError(
            f"{model}: the checkpoint lacks {len(missing)} weight(s) the config needs, e.g. "
            f"{missing[0]}; {_AGAIN} or fix config.json"
        )
