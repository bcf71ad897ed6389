"""The extraction engines behind one interface: one frozen request, chosen by name in one place."""

from __future__ import annotations

import dataclasses
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner

from moee_pipeline.cli import main
from moee_pipeline.extract import engine as engines
from moee_pipeline.extract.engine import ExtractRequest, RayOptions, engine_named
from moee_pipeline.extract.run import LocalEngine, run_extract
from moee_pipeline.extract.settings import ExtractionError, ExtractOptions, TaskSummary
from moee_pipeline.models.spec import ModelSpec
from moee_pipeline.prompts import resolve_prompt
from moee_pipeline.vocabulary import ENGINES

NONE = resolve_prompt("none")


class Recording:
    """An engine that records the request it is given and extracts nothing."""

    def __init__(self) -> None:
        self.requests: list[ExtractRequest] = []

    def run(self, request: ExtractRequest) -> Iterator[TaskSummary]:
        self.requests.append(request)
        return iter(())


def test_every_engine_name_has_one_engine() -> None:
    assert tuple(engines.ENGINE_FACTORIES) == ENGINES
    assert isinstance(engine_named("local"), LocalEngine)
    from moee_pipeline.extract.ray_engine import RayEngine

    ray = engine_named("ray", RayOptions(workers=3))
    assert isinstance(ray, RayEngine) and ray.options == RayOptions(workers=3)


def test_ray_options_without_the_ray_engine_are_refused() -> None:
    with pytest.raises(ExtractionError, match="need --engine ray"):
        engine_named("local", RayOptions(workers=2))
    assert isinstance(engine_named("local", RayOptions()), LocalEngine)


def test_the_request_is_frozen_and_holds_tuples(tmp_path: Path) -> None:
    request = ExtractRequest(
        ModelSpec("m"), tasks=["A", "B"], prompts=[NONE], data_dir=tmp_path, splits=["test"]
    )
    assert (request.tasks, request.prompts, request.splits) == (("A", "B"), (NONE,), ("test",))
    with pytest.raises(dataclasses.FrozenInstanceError):
        request.tasks = ("C",)  # type: ignore[misc]
    assert ExtractRequest(ModelSpec("m"), tasks=[], prompts=[]).splits is None


def test_options_default_to_the_cache_the_cli_uses(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MOEE_CACHE_DIR", "/elsewhere")
    assert ExtractOptions().cache_dir == Path("/elsewhere")
    monkeypatch.delenv("MOEE_CACHE_DIR")
    assert ExtractOptions().cache_dir == Path("cache")


def test_the_cli_builds_one_request_and_picks_the_engine_by_name(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    made: dict[str, tuple[Recording, RayOptions]] = {}

    def factory(name: str) -> Callable[[RayOptions], Recording]:
        def make(ray: RayOptions) -> Recording:
            made[name] = (Recording(), ray)
            return made[name][0]

        return make

    monkeypatch.setattr(engines, "ENGINE_FACTORIES", {n: factory(n) for n in ENGINES})
    args = ["extract", "--model", "org/m", "--tasks", "MoeeToySTS", "--cache-dir", str(tmp_path)]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    engine, ray = made["local"]
    (request,) = engine.requests
    # every option left out is the library's default, stated once in ExtractOptions
    assert request.options == ExtractOptions(cache_dir=tmp_path)
    assert (request.spec.model, request.tasks, request.prompts) == (
        "org/m",
        ("MoeeToySTS",),
        (NONE,),
    )
    assert (request.data_dir, request.splits, ray) == (None, None, RayOptions())
    result = CliRunner().invoke(main, [*args, "--engine", "ray", "--workers", "3"])
    assert result.exit_code == 0, result.output
    assert made["ray"][1] == RayOptions(workers=3)
    assert made["ray"][0].requests == [request]  # the same request, whichever engine


def test_cli_defaults_are_the_options_defaults() -> None:
    from moee_pipeline.cli.extract import extract

    cli = {p.name: p.default for p in extract.params}
    defaults = ExtractOptions()
    for name in ("batch_size", "max_batch_tokens", "max_length", "rows_per_shard"):
        assert cli[name] == getattr(defaults, name), name
    assert cli["shard"] == "{}/{}".format(*defaults.shard)
    assert cli["workers"] == RayOptions().workers


def test_run_extract_is_the_local_engine_on_a_request(monkeypatch: pytest.MonkeyPatch) -> None:
    seen = Recording()
    monkeypatch.setattr(LocalEngine, "run", lambda self, request: seen.run(request))
    options = ExtractOptions(cache_dir=Path("c"), batch_size=3)
    list(run_extract(ModelSpec("m"), tasks=["T"], prompts=[NONE], options=options))
    assert seen.requests == [
        ExtractRequest(ModelSpec("m"), tasks=["T"], prompts=[NONE], options=options)
    ]


def test_choosing_an_engine_imports_neither_torch_nor_ray() -> None:
    code = (
        "import sys; from moee_pipeline.extract.engine import engine_named; "
        "engine_named('local'); import moee_pipeline.extract.run; "
        "heavy = [m for m in ('torch', 'transformers', 'ray', 'mteb') if m in sys.modules]; "
        "assert not heavy, heavy"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-2000:]
