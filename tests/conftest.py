"""Shared fixtures: a tokenizer and tiny random MoE models, built once per session, offline."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests import fault_hook

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

SHARED = Path(__file__).resolve().parents[2] / "shared"


@pytest.fixture(scope="session")
def tokenizer_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from moee_pipeline.testing.tiny import train_tokenizer

    path = tmp_path_factory.mktemp("tokenizer")
    train_tokenizer(path)
    return path


@pytest.fixture(scope="session")
def tiny_model(
    tmp_path_factory: pytest.TempPathFactory, tokenizer_dir: Path
) -> Callable[[str], Path]:
    """A factory: tiny_model("olmoe") -> folder of a saved tiny random model (built once)."""
    from moee_pipeline.testing.tiny import build_tiny_model

    built: dict[str, Path] = {}

    def make(kind: str) -> Path:
        if kind not in built:
            folder = tmp_path_factory.mktemp(f"model-{kind}")
            built[kind] = build_tiny_model(kind, folder, tokenizer_dir=tokenizer_dir)
        return built[kind]

    return make


@pytest.fixture(scope="session")
def mteb_data() -> Path:
    """../shared/mteb-data, or skip where it is absent."""
    path = SHARED / "mteb-data"
    if not path.is_dir():
        pytest.skip("../shared/mteb-data is not present")
    return path


@pytest.fixture(scope="session")
def ray_local() -> Iterator[object]:
    """A local Ray instance (2 CPUs), started once for the session's Ray tests and shut down."""
    ray = pytest.importorskip("ray")
    # log_to_driver off: Ray's log monitor otherwise prints other processes' lines (a GCS
    # error after a fault test) into whatever stream a later in-process CLI test captures
    ray.init(num_cpus=2, include_dashboard=False, logging_level="ERROR", log_to_driver=False)
    ray.data.DataContext.get_current().enable_progress_bars = False
    yield ray
    ray.shutdown()


@pytest.fixture(scope="session")
def toy_cache(
    tmp_path_factory: pytest.TempPathFactory, tiny_model: Callable[[str], Path]
) -> tuple[Path, Path]:
    """(model folder, cache) with MoeeToySTS extracted in parts of 20 rows: copy before changing."""
    from click.testing import CliRunner

    from moee_pipeline.cli import main

    model = tiny_model("olmoe")
    cache = tmp_path_factory.mktemp("toy-cache") / "cache"
    args = ["extract", "--model", str(model), "--tasks", "MoeeToySTS", "--cache-dir", str(cache)]
    result = CliRunner().invoke(main, [*args, "--rows-per-shard", "20"])
    assert result.exit_code == 0, result.output
    return model, cache


@pytest.fixture
def faults(monkeypatch: pytest.MonkeyPatch) -> Iterator[fault_hook.Faults]:
    """Arm fault points for this test only; every write goes through again afterwards."""
    armed = fault_hook.Faults(monkeypatch)
    yield armed
    fault_hook.disarm()
