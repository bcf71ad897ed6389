"""Loading: an incomplete checkpoint is an error, never silently random weights."""

from __future__ import annotations

import json
import re
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest
from safetensors.torch import load_file, save_file

from moee_pipeline.models.loading import ModelLoadError, ModelSpec, load_model


def test_checkpoint_missing_a_weight_is_refused(
    tiny_model: Callable[[str], Path], tmp_path: Path
) -> None:
    broken = tmp_path / "broken"
    shutil.copytree(tiny_model("olmoe"), broken)
    weights = load_file(broken / "model.safetensors")
    dropped = next(k for k in weights if "layers.1.self_attn.q_proj" in k)
    del weights[dropped]
    save_file(weights, broken / "model.safetensors", metadata={"format": "pt"})
    with pytest.raises(ModelLoadError, match=r"lacks 1 weight"):
        load_model(ModelSpec(str(broken)))


def test_complete_checkpoint_loads_quietly(
    tiny_model: Callable[[str], Path], capsys: pytest.CaptureFixture[str]
) -> None:
    load_model(ModelSpec(str(tiny_model("olmoe"))))
    assert "UNEXPECTED" not in capsys.readouterr().err


def _copy(tiny_model: Callable[[str], Path], tmp_path: Path, name: str) -> Path:
    folder = tmp_path / name
    shutil.copytree(tiny_model("olmoe"), folder)
    return folder


@pytest.mark.parametrize("damage", ["cut", "garbage"])
def test_a_damaged_torch_checkpoint_is_one_line(
    tiny_model: Callable[[str], Path], tmp_path: Path, damage: str
) -> None:
    import torch

    folder = _copy(tiny_model, tmp_path, "torch-bin")
    weights = load_file(folder / "model.safetensors")
    (folder / "model.safetensors").unlink()
    torch.save(weights, folder / "pytorch_model.bin")
    load_model(ModelSpec(str(folder)))  # whole, torch's format loads
    data = (folder / "pytorch_model.bin").read_bytes()
    (folder / "pytorch_model.bin").write_bytes(data[: len(data) // 2] if damage == "cut" else b"x")
    with pytest.raises(
        ModelLoadError, match=rf"^cannot load the weights of {re.escape(str(folder))} \("
    ) as error:
        load_model(ModelSpec(str(folder)))
    assert "\n" not in str(error.value)


def test_a_shape_the_config_disagrees_on_is_named_with_both_shapes(
    tiny_model: Callable[[str], Path], tmp_path: Path
) -> None:
    folder = _copy(tiny_model, tmp_path, "vocab")
    config = json.loads((folder / "config.json").read_text())
    stored = tuple(load_file(folder / "model.safetensors")["model.embed_tokens.weight"].shape)
    (folder / "config.json").write_text(json.dumps({**config, "vocab_size": stored[0] + 7}))
    wanted = (stored[0] + 7, stored[1])
    with pytest.raises(ModelLoadError) as error:
        load_model(ModelSpec(str(folder)))
    assert str(error.value).startswith(
        f"{folder / 'config.json'} does not match the weights (1 differ): embed_tokens.weight is "
        f"{stored} in them, {wanted} in the config"
    )


def test_the_tokenizer_is_checked_before_the_model_loads(
    tiny_model: Callable[[str], Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from moee_pipeline.models import loading

    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("the weights were read although the folder has no tokenizer")

    folder = _copy(tiny_model, tmp_path, "no-tokenizer")
    for name in ("tokenizer.json", "tokenizer_config.json"):
        (folder / name).unlink()
    monkeypatch.setattr(loading.AutoModel, "from_pretrained", refuse)
    with pytest.raises(
        ModelLoadError, match=rf"^{re.escape(str(folder))} has no tokenizer: .*tokenizer\.json"
    ):
        load_model(ModelSpec(str(folder)))


def test_a_safetensors_file_cut_by_a_few_bytes_is_refused_before_loading(
    tiny_model: Callable[[str], Path], tmp_path: Path
) -> None:
    from moee_pipeline.models import checkpoint

    folder = _copy(tiny_model, tmp_path, "cut")
    checkpoint.check_weights(folder)  # the whole file passes
    weights = folder / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:-4])
    with pytest.raises(
        ModelLoadError, match=rf"^{re.escape(str(weights))} is damaged or cut short \("
    ):
        checkpoint.check_weights(folder)


@pytest.mark.parametrize(
    ("changes", "cause"),
    [({"model_type": "nonsense"}, "model type `nonsense`"), ({"hidden_size": "big"}, "hidden_size"),
     ({"model_type": None}, "model_type")],
    ids=["unknown-type", "bad-value", "no-type"],
)  # fmt: skip
def test_a_local_config_transformers_rejects_names_its_file_not_the_hub(
    tiny_model: Callable[[str], Path], tmp_path: Path, changes: dict[str, object], cause: str
) -> None:
    folder = _copy(tiny_model, tmp_path, "config")
    config = {**json.loads((folder / "config.json").read_text()), **changes}
    config = {k: v for k, v in config.items() if v is not None}
    (folder / "config.json").write_text(json.dumps(config))
    with pytest.raises(ModelLoadError) as error:
        load_model(ModelSpec(str(folder)))
    line = str(error.value)
    assert line.startswith(f"{folder / 'config.json'} cannot be used (") and cause in line, line
    assert "Hub" not in line and "trust-remote-code" not in line
