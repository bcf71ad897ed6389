"""`moee score --workers 2` and `--engine ray` give the serial run's scores, written once."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner

from moee_pipeline.cli import main
from tests.support.cli import cli_ok
from tests.support.scores import read_scores
from tests.support.trees import unchanged

TASKS = "MoeeToySTS,MoeeToyClassification"
PROMPTS = ("none", "prompteol")


@pytest.fixture(scope="module")
def cache(
    tiny_model: Callable[[str], Path], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Path]:
    """Two toy tasks extracted under two prompts, shared by the module's tests (read only)."""
    folder = tmp_path_factory.mktemp("cache")
    prompts = [arg for p in PROMPTS for arg in ("--prompt", p)]
    model = str(tiny_model("olmoe"))
    cli_ok("extract", "--model", model, "--tasks", TASKS, *prompts, "--cache-dir", str(folder))
    with unchanged(folder, "the module's extracted cache"):
        yield folder


def _score(cache: Path, model: str, out: Path, *extra: str) -> list[dict[str, str]]:
    prompts = [arg for p in PROMPTS for arg in ("--prompt", p)]
    cli_ok(
        "score", "--model", model, *prompts, "--cache-dir", str(cache), "--output", str(out),
        "--weight", "0.5", "--weight", "2", *extra,
    )  # fmt: skip
    return read_scores(out / "scores.csv")


@pytest.mark.slow
def test_workers_and_ray_equal_the_serial_scores(
    cache: Path, tiny_model: Callable[[str], Path], tmp_path: Path, ray_local: object
) -> None:
    model = str(tiny_model("olmoe"))
    serial = _score(cache, model, tmp_path / "serial")
    assert len(serial) == 2 * 2 * 5  # tasks x prompts x (HS, RW, concat, sum x 2)
    processes = _score(cache, model, tmp_path / "workers", "--workers", "2")
    on_ray = _score(cache, model, tmp_path / "ray", "--engine", "ray", "--workers", "2")
    assert processes == serial  # same rows, same order, same scores to the last digit
    assert on_ray == serial
    # each unit wrote mteb's JSON results where the serial run does
    names = sorted(
        p.relative_to(tmp_path / "serial") for p in (tmp_path / "serial").rglob("*.json")
    )
    assert names
    for other in ("workers", "ray"):
        assert (
            sorted(p.relative_to(tmp_path / other) for p in (tmp_path / other).rglob("*.json"))
            == names
        )


@pytest.mark.slow
def test_a_missing_extraction_is_one_line_from_a_worker(
    cache: Path, tiny_model: Callable[[str], Path], tmp_path: Path
) -> None:
    result = CliRunner().invoke(
        main,
        ["score", "--model", str(tiny_model("olmoe")), "--prompt", "style", "--tasks", TASKS,
         "--cache-dir", str(cache), "--output", str(tmp_path), "--workers", "2"],
    )  # fmt: skip
    assert result.exit_code != 0
    assert "not extracted" in result.output
    assert result.output.strip().splitlines() == [result.output.strip()]  # before any worker
    assert not (tmp_path / "scores.csv").exists()
