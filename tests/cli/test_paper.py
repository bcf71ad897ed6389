"""`moee paper`: its steps are valid `moee` commands, in the paper's order, with the paper's grid.
(The whole run on the tiny model: `make demo`, tests/e2e/test_demo.py.)"""

from __future__ import annotations

import shlex
from pathlib import Path
from typing import Any

import pytest

from moee_pipeline.cli import main
from moee_pipeline.cli.paper import PAPER_PROMPTS, PaperRun
from moee_pipeline.errors import MoeeError
from moee_pipeline.vocabulary import PAPER_TASKS
from tests.support.cli import cli


def _parsed(args: list[str]) -> dict[str, Any]:
    """The options the real command parses from a step's arguments (nothing runs)."""
    command = main.commands[args[0]]
    with command.make_context(args[0], args[1:], resilient_parsing=False) as ctx:
        return dict(ctx.params)


def test_every_step_parses_as_its_command_and_covers_the_grid(tmp_path: Path) -> None:
    run = PaperRun(model="m", out=tmp_path / "out", cache_dir=tmp_path / "cache")
    extract = _parsed(run.extract())
    assert extract["hs_layers"] == "all" and extract["splits"] == "test,validation"
    assert extract["prompts"] == PAPER_PROMPTS and extract["tasks"] == ",".join(PAPER_TASKS)
    score = _parsed(run.score())
    assert set(score["pooling"]) == {"last", "mean"}
    assert set(score["hs_layers"]) == {"last", "all"}
    assert set(score["splits"]) == {"test", "validation"}
    assert "auto" in score["weights"]
    assert score["output"] == tmp_path / "out" / "scores"
    layers = _parsed(run.layer_scores(16))
    assert layers["methods"] == ("HS",) and layers["hs_layers"] == tuple(map(str, range(16)))
    assert layers["output"] == score["output"]  # one scores.csv for the report
    markdown, html = (_parsed(args) for args in run.reports())
    assert markdown["compare_paper"] and markdown["plots"] == tmp_path / "out" / "plots"
    assert html["fmt"] == "html" and html["out"] == tmp_path / "out" / "report.html"


def test_dry_run_prints_the_steps_and_runs_nothing(tmp_path: Path) -> None:
    code, out = cli(
        "paper", "--model", "m", "--tasks", "STS12", "--cache-dir", str(tmp_path / "c"),
        "--out", str(tmp_path / "o"), "--dry-run",
    )  # fmt: skip
    assert code == 0, out
    commands = [line for line in out.splitlines() if line.startswith("moee ")]
    assert [shlex.split(c)[1] for c in commands] == [
        "extract",
        "score",
        "score",
        "report",
        "report",
    ]
    assert not (tmp_path / "c").exists() and not (tmp_path / "o").exists()


def test_a_weight_out_of_range_is_one_line(tmp_path: Path) -> None:
    code, out = cli("paper", "--model", "m", "--weight", "-1", "--dry-run")
    assert code != 0 and "--weight" in out and "Traceback" not in out


def test_layer_count_missing_from_the_cache_says_what_to_run(tmp_path: Path) -> None:
    run = PaperRun(model="m", out=tmp_path, tasks=("STS12",), cache_dir=tmp_path / "none")
    with pytest.raises(MoeeError, match="run the extract step"):
        run.n_layers()
