"""Paper-model aliases, `moee models`, and the early out-of-memory error."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner

from moee_pipeline.cli import main
from moee_pipeline.models import catalog
from moee_pipeline.models.loading import ModelLoadError, check_fits
from moee_pipeline.models.memory import GIB


def test_aliases_resolve_to_hub_ids() -> None:
    assert catalog.resolve_model("olmoe") == "allenai/OLMoE-1B-7B-0924"
    assert catalog.resolve_model("qwen1.5-moe") == "Qwen/Qwen1.5-MoE-A2.7B"
    assert catalog.resolve_model("deepseek-moe") == "deepseek-ai/deepseek-moe-16b-base"
    assert catalog.resolve_model("some/other-model") == "some/other-model"


@pytest.mark.parametrize(
    ("alias", "moe_layers", "experts", "rw_dims"),
    [("olmoe", 16, 64, 1024), ("qwen1.5-moe", 24, 60, 1440), ("deepseek-moe", 27, 64, 1728)],
)
def test_describe_matches_the_paper(
    alias: str, moe_layers: int, experts: int, rw_dims: int
) -> None:
    row = catalog.describe(catalog.PAPER_MODELS[alias])
    assert (row["moe_layers"], row["experts"], row["rw_dims"]) == (moe_layers, experts, rw_dims)
    weights = row["weight_bytes"]
    assert weights["nf4"] < 0.35 * weights["none"]
    assert weights["nf4"] < weights["int8"] < weights["none"]


def test_olmoe_nf4_weights_fit_in_5_gb() -> None:
    row = catalog.describe(catalog.PAPER_MODELS["olmoe"])
    assert row["weight_bytes"]["nf4"] < 5e9
    assert 6.5e9 < row["parameters"] < 7.0e9  # 6.9 B with the LM head, which is not loaded


def test_models_command_lists_the_three_models() -> None:
    result = CliRunner().invoke(main, ["models"])
    assert result.exit_code == 0, result.output
    for alias in ("olmoe", "qwen1.5-moe", "deepseek-moe"):
        assert alias in result.output
    assert "GiB" in result.output


def test_extract_resolves_the_alias(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    from moee_pipeline.extract.engine import ExtractRequest
    from moee_pipeline.extract.run import LocalEngine
    from moee_pipeline.extract.settings import TaskSummary

    seen = []

    def fake_run(self: LocalEngine, request: ExtractRequest) -> Iterator[TaskSummary]:
        seen.append(request.spec.model)
        return iter(())

    monkeypatch.setattr(LocalEngine, "run", fake_run)
    result = CliRunner().invoke(
        main,
        ["extract", "--model", "deepseek-moe", "--tasks", "STS12", "--cache-dir", str(tmp_path)],
    )
    assert result.exit_code == 0, result.output
    assert seen == ["deepseek-ai/deepseek-moe-16b-base"]


def _estimate(sizes: dict[str, float]) -> Callable[[str], dict[str, int]]:
    return lambda q: {"total_bytes": int(sizes[q] * GIB), "largest_layer_bytes": int(0.5 * GIB)}


def test_memory_precheck_names_need_and_options() -> None:
    sizes = {"nf4": 4.0, "int8": 7.0, "none": 13.0}
    with pytest.raises(ModelLoadError) as error:
        check_fits(
            "allenai/OLMoE-1B-7B-0924",
            quantization="none",
            estimate=_estimate(sizes),
            free_bytes=int(10 * GIB),
            device="cuda:0",
        )
    message = str(error.value)
    assert len(message.splitlines()) == 1
    assert "14.50 GiB" in message  # 13 GiB weights + 1.5 GiB reserve
    assert "10.00 GiB free" in message
    assert "--quantization nf4 (~6.00 GiB)" in message
    assert "--quantization int8 (~9.00 GiB)" in message
    need = check_fits(
        "m", quantization="nf4", estimate=_estimate(sizes), free_bytes=int(10 * GIB), device="x"
    )
    assert need == int(6.0 * GIB)


def test_memory_precheck_when_nothing_fits() -> None:
    sizes = {"nf4": 8.0, "int8": 15.0, "none": 30.0}
    with pytest.raises(ModelLoadError, match="no quantization fits"):
        check_fits(
            "m", quantization="nf4", estimate=_estimate(sizes), free_bytes=int(6 * GIB), device="x"
        )
