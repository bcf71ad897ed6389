"""Shared fixtures: a tokenizer, tiny random MoE models and a toy cache, built once, offline.

What is built once per session is shared by every test that asks for it, so it is read only:
each such fixture checks when the session ends that no test changed it (`support/trees.py`). A
test that writes gets its own copy: `toy_cache` is a fresh copy of the session's toy cache for
every test; a tiny model or the shared MTEB data is copied by the test that damages it.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from pathlib import Path

import pytest

from tests.support import fault_hook
from tests.support.paths import SHARED
from tests.support.trees import unchanged

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
# One compute thread per process (torch, OpenBLAS, scikit-learn; set before any of them loads,
# inherited by every process a test starts): the tiny models gain nothing from more, and on a
# shared 2-core machine threads that spin-wait for each other made the end-to-end tests up to
# ten times slower (demo, extract -> score). Set it yourself to test with more.
os.environ.setdefault("OMP_NUM_THREADS", "1")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """`make test` runs on two pytest-xdist workers; the tests of the one local Ray instance
    all go to one of them (`--dist loadgroup`), so a session starts Ray once, not per worker."""
    for item in items:
        if "ray_local" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.xdist_group("ray"))


@pytest.fixture(scope="session")
def tokenizer_dir(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """The folder of a small trained tokenizer (read only)."""
    from moee_pipeline.testing.tiny import train_tokenizer

    path = tmp_path_factory.mktemp("tokenizer")
    train_tokenizer(path)
    with unchanged(path, "the session's tokenizer"):
        yield path


@pytest.fixture(scope="session")
def tiny_model(
    tmp_path_factory: pytest.TempPathFactory, tokenizer_dir: Path
) -> Iterator[Callable[[str], Path]]:
    """A factory: tiny_model("olmoe") -> folder of a saved tiny random model, built on first use
    and read only (a test that damages a model copies it first)."""
    from moee_pipeline.testing.tiny import build_tiny_model

    built: dict[str, Path] = {}
    with ExitStack() as guards:

        def make(kind: str) -> Path:
            if kind not in built:
                folder = tmp_path_factory.mktemp(f"model-{kind}")
                path = build_tiny_model(kind, folder, tokenizer_dir=tokenizer_dir)
                built[kind] = guards.enter_context(unchanged(path, f"the tiny {kind} model"))
            return built[kind]

        yield make


@pytest.fixture(scope="session")
def mteb_data() -> Iterator[Path]:
    """../shared/mteb-data (read only), or skip where it is absent."""
    path = SHARED / "mteb-data"
    if not path.is_dir():
        pytest.skip("../shared/mteb-data is not present")
    with unchanged(path, "../shared/mteb-data"):
        yield path


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
def toy_cache_built(
    tmp_path_factory: pytest.TempPathFactory, tiny_model: Callable[[str], Path]
) -> Iterator[tuple[Path, Path]]:
    """(model folder, cache) with MoeeToySTS extracted in parts of 20 rows, built once for the
    session and read only: tests take `toy_cache`, their own copy of it."""
    from click.testing import CliRunner

    from moee_pipeline.cli import main

    model = tiny_model("olmoe")
    cache = tmp_path_factory.mktemp("toy-cache") / "cache"
    args = ["extract", "--model", str(model), "--tasks", "MoeeToySTS", "--cache-dir", str(cache)]
    result = CliRunner().invoke(main, [*args, "--rows-per-shard", "20"])
    assert result.exit_code == 0, result.output
    with unchanged(cache, "the session's toy cache"):
        yield model, cache


@pytest.fixture
def toy_cache(toy_cache_built: tuple[Path, Path], tmp_path: Path) -> tuple[Path, Path]:
    """(model folder, this test's own copy of the toy cache): change it as the test likes."""
    model, built = toy_cache_built
    copy = tmp_path / "toy"
    shutil.copytree(built, copy)
    return model, copy


@pytest.fixture
def faults(monkeypatch: pytest.MonkeyPatch) -> Iterator[fault_hook.Faults]:
    """Arm fault points for this test only; every write goes through again afterwards."""
    armed = fault_hook.Faults(monkeypatch)
    yield armed
    fault_hook.disarm()
