"""Loading: an incomplete checkpoint is an error, never silently random weights."""

from __future__ import annotations

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
