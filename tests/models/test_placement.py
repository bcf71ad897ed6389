"""`--device-map auto` / `--max-memory`: parsing, refusals, and what a CPU can check of loading."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from moee_pipeline.cli import main
from moee_pipeline.extract.hooks import RouterCapture, forward_pooled
from moee_pipeline.models import placement
from moee_pipeline.models.loading import ModelSpec, load_model
from moee_pipeline.models.names import Quantization
from moee_pipeline.models.quantize import placed_device


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("gpu=20GiB,cpu=64GiB", (("gpu", "20GiB"), ("cpu", "64GiB"))),
        ("0=10GB, 1=12.5GiB", (("0", "10GB"), ("1", "12.5GiB"))),
        ("CPU=1000", (("cpu", "1000"),)),
        ("", ()),
    ],
)
def test_max_memory_parses(value: str, expected: tuple[tuple[str, str], ...]) -> None:
    assert placement.parse_max_memory(value) == expected


@pytest.mark.parametrize("value", ["gpu", "tpu=1GiB", "gpu=lots", "0:1GiB"])
def test_bad_max_memory_is_refused(value: str) -> None:
    with pytest.raises(placement.PlacementError, match="DEVICE=SIZE"):
        placement.parse_max_memory(value)


def test_gpu_stands_for_every_visible_gpu_and_sizes_become_bytes() -> None:
    given = placement.Placement("auto", placement.parse_max_memory("gpu=1GiB,1=2GiB,cpu=3GB"))
    assert placement.max_memory(given, gpu_count=2) == {0: 2**30, 1: 2 * 2**30, "cpu": 3 * 10**9}
    with pytest.raises(placement.PlacementError, match="names GPU 2"):
        placement.max_memory(placement.Placement("auto", (("2", "1GiB"),)), gpu_count=2)


def test_device_map_names_each_block_by_its_longest_prefix() -> None:
    device_map: dict[str, int | str] = {
        "embed_tokens": 0,
        "layers.0": 0,
        "layers": 1,
        "norm": "cpu",
    }
    assert placed_device(device_map, "layers.0") == torch.device("cuda:0")
    assert placed_device(device_map, "layers.1") == torch.device("cuda:1")
    assert placed_device(device_map, "layers.10") == torch.device("cuda:1")
    assert placed_device(device_map, "norm") == torch.device("cpu")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--device-map", "auto", "--quantization", "int8"], "nf4 or none, not int8"),
        (["--device-map", "auto", "--device", "cpu"], "drop --device cpu"),
        (["--max-memory", "gpu=1GiB"], "--max-memory needs --device-map auto"),
        (["--device-map", "auto", "--max-memory", "gpu:1"], "DEVICE=SIZE"),
    ],
)
def test_unsupported_combinations_are_one_line(
    args: list[str], message: str, tmp_path: Path
) -> None:
    result = CliRunner().invoke(
        main, ["extract", *args, "--tasks", "MoeeToySTS", "--cache-dir", str(tmp_path)]
    )
    assert result.exit_code != 0
    assert message in result.output
    assert len(result.output.strip().splitlines()) == 1, result.output
    assert not (tmp_path / "tasks").exists()  # refused before any task data was read


def _pooled(spec: ModelSpec) -> tuple[torch.device, list[np.ndarray]]:
    loaded = load_model(spec)
    tokens = loaded.tokenizer(["a short text", "and another, longer text here"], padding=True)
    ids = torch.tensor(tokens["input_ids"])
    mask = torch.tensor(tokens["attention_mask"])
    with RouterCapture(loaded.routers, loaded.decoder_layers) as capture:  # every layer's HS too
        pooled = forward_pooled(loaded, capture, ids, mask)
    return loaded.device, list(pooled.arrays().values())


@pytest.mark.parametrize("quantization", ["none", "nf4"])
def test_device_map_auto_loads_on_cpu_with_the_same_features(
    tiny_model: Callable[[str], Path], quantization: Quantization
) -> None:
    model = str(tiny_model("olmoe"))
    plain = ModelSpec(model=model, quantization=quantization, device="cpu")
    spread = ModelSpec(
        model=model,
        quantization=quantization,
        device_map="auto",
        max_memory=(("cpu", "2GiB"),),
    )
    (_, expected), (device, got) = _pooled(plain), _pooled(spread)
    assert device == torch.device("cpu")
    assert len(got) == len(expected) == 6  # RW, HS and every layer's HS, last token and mean
    for a, b in zip(got, expected, strict=True):
        np.testing.assert_allclose(a, b, atol=1e-5, rtol=0)
