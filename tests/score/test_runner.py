"""One scoring path: the config's defaults and checks, the runner chosen by engine, serial ==
process == Ray rows, the extracted-check before any unit, and the weight's one text format."""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from moee_pipeline.cache import layout
from moee_pipeline.cache.store import CacheError
from moee_pipeline.cli import main
from moee_pipeline.score.combine import Combination, CombineError
from moee_pipeline.score.config import ScoreConfig, ScoreError, default
from moee_pipeline.score.encoder import TaskScore
from moee_pipeline.score.parallel import ProcessRunner, RayRunner
from moee_pipeline.score.plan import plan_units
from moee_pipeline.score.rows import Provenance, ScoreRow
from moee_pipeline.score.run import run_score, write_scores
from moee_pipeline.score.runner import RUNNERS, Runner, SerialRunner, runner_for
from moee_pipeline.vocabulary import ENGINES, MAX_WEIGHT, SUM, format_weight
from tests.support.synthetic import MODEL, record_split_texts, write_synthetic_task
from tests.support.trees import unchanged

TASKS = ("MoeeToySTS", "MoeeToyClassification")
PROMPTS = ("none", "prompteol")


@dataclass
class Spy:
    """A `Progress` that records what the units and runners report."""

    started: list[str] = field(default_factory=list)
    done: int = 0

    def evaluating(self, what: str) -> None:
        self.started.append(what)

    def evaluated(self, count: int = 1) -> None:
        self.done += count


@pytest.fixture(scope="module")
def cache(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """Synthetic features of two toy tasks under two prompts (read only: copy before changing;
    checked unchanged after the module's tests)."""
    from moee_pipeline.tasks import load_task, task_texts

    root = tmp_path_factory.mktemp("runners") / "cache"
    for name in TASKS:
        texts = task_texts(load_task(name))
        for prompt in PROMPTS:
            write_synthetic_task(root, name, texts, prompt=prompt)
        record_split_texts(root, name)
    with unchanged(root, "the runners' synthetic cache"):
        yield root


def _config(cache: Path, out: Path, **kw: Any) -> ScoreConfig:
    kw = {"prompts": PROMPTS, "tasks": TASKS, "weights": (0.5, 2.0), **kw}
    return ScoreConfig(model=MODEL, cache_dir=cache, output=out, progress=False, **kw)


def test_cache_dir_defaults_to_the_clis_root(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv(layout.CACHE_ENV, str(tmp_path / "elsewhere"))
    assert ScoreConfig(model="m").cache_dir == tmp_path / "elsewhere"
    assert default("cache_dir") == tmp_path / "elsewhere"
    monkeypatch.delenv(layout.CACHE_ENV)
    assert ScoreConfig(model="m").cache_dir == Path("cache")


@pytest.mark.parametrize(
    ("kw", "message"),
    [
        ({"engine": "spark"}, "unknown --engine 'spark': choose from local, ray"),
        ({"methods": ("XX",)}, "unknown --method 'XX'"),
        ({"rw": ("probs",)}, "unknown --rw 'probs': choose from logits, softmax"),
        ({"zscore_fit": "batch"}, "unknown --zscore-fit 'batch': choose from split, task"),
        ({"weights": (1e308,)}, "weight 1e+308: use a number from 0 to 10000"),
        ({"weights": (-1.0,)}, "weight -1.0: use a number from 0 to 10000"),
        ({"workers": 0}, "--workers 0: use 1 or more"),
    ],
)
def test_config_refuses_bad_settings_in_one_line(kw: dict[str, object], message: str) -> None:
    with pytest.raises(ScoreError, match=re.escape(message)):
        ScoreConfig(model="m", **kw)  # type: ignore[arg-type]


def test_one_runner_per_engine_chosen_in_one_place() -> None:
    assert set(RUNNERS) == set(ENGINES)
    assert isinstance(runner_for(ScoreConfig(model="m")), SerialRunner)
    assert runner_for(ScoreConfig(model="m", workers=3)) == ProcessRunner(workers=3)
    ray = runner_for(ScoreConfig(model="m", engine="ray", workers=2, ray_address="auto"))
    assert ray == RayRunner(workers=2, address="auto")
    with pytest.raises(ScoreError, match="--ray-address needs --engine ray"):
        runner_for(ScoreConfig(model="m", ray_address="auto"))


def test_units_come_task_by_task_prompts_within(cache: Path, tmp_path: Path) -> None:
    config = _config(cache, tmp_path, prompts=("prompteol", "none", "prompteol"))
    assert plan_units(config) == [
        ("MoeeToySTS", "prompteol"), ("MoeeToySTS", "none"),
        ("MoeeToyClassification", "prompteol"), ("MoeeToyClassification", "none"),
    ]  # fmt: skip


def test_a_missing_unit_fails_before_any_unit_is_scored(cache: Path, tmp_path: Path) -> None:
    # the last unit (MoeeToyClassification, style) was never extracted: nothing may run first
    out = tmp_path / "out"
    with pytest.raises(CacheError, match=r"MoeeToySTS \[style\] is not extracted"):
        run_score(_config(cache, out, prompts=("none", "style")))
    assert not out.exists()  # no mteb result, no scores.csv


def _rows(cache: Path, out: Path, runner: Runner, spy: Spy) -> list[ScoreRow]:
    config = _config(cache, out)
    units = plan_units(config)
    by_unit = runner.run(config, units, spy)
    return [row for unit in units for row in by_unit[unit]]


@pytest.mark.slow
def test_serial_process_and_ray_runners_give_the_same_rows(
    cache: Path, tmp_path: Path, ray_local: object
) -> None:
    serial_spy, process_spy, ray_spy = Spy(), Spy(), Spy()
    serial = _rows(cache, tmp_path / "serial", SerialRunner(), serial_spy)
    processes = _rows(cache, tmp_path / "processes", ProcessRunner(workers=2), process_spy)
    on_ray = _rows(cache, tmp_path / "ray", RayRunner(workers=2), ray_spy)
    assert len(serial) == len(TASKS) * len(PROMPTS) * 5  # HS, RW, concat, sum x 2
    assert [r.as_csv() for r in processes] == [r.as_csv() for r in serial]
    assert [r.as_csv() for r in on_ray] == [r.as_csv() for r in serial]
    # one bar for the run: the serial run per evaluation, the workers per unit, same total
    assert serial_spy.done == len(serial) == len(serial_spy.started)
    assert process_spy.done == ray_spy.done == len(serial)
    assert process_spy.started == ray_spy.started == []
    assert {r.model for r in serial} == {layout.model_slug(MODEL)} == {"test-org--tiny-moe"}


@pytest.mark.parametrize("weight", [0.0, 1.0, 0.5, 2.5e-05, 1 / 3, 1234.56789, MAX_WEIGHT])
def test_a_weight_is_one_text_from_scores_csv_to_the_report(weight: float, tmp_path: Path) -> None:
    from moee_pipeline.report.options import ReportOptions
    from moee_pipeline.report.tables import load_scores
    from moee_pipeline.report.weight_rules import resolve_weights

    combo = Combination(SUM, weight=weight)
    score = TaskScore("T", "STS", "test", "cosine_spearman", 0.5)
    provenance = Provenance("none", "float32", "r", "512", "abc", "split")
    write_scores(tmp_path / "scores.csv", [ScoreRow("m", "none", combo, score, provenance)])
    text = (tmp_path / "scores.csv").read_text().splitlines()[1].split(",")[3]
    assert text == format_weight(weight) == combo.weight_text
    assert f"_w{text}_" in combo.folder
    frame = load_scores(tmp_path)
    assert float(text) == frame.loc[0, "weight"]  # pd.to_numeric reads the text back exactly
    assert format_weight(frame.loc[0, "weight"]) == text
    assert list(resolve_weights(frame, options=ReportOptions())["weight_label"]) == [text]


@pytest.mark.parametrize("bad", ["1e308", "1000001", "-0.5"])
def test_a_weight_out_of_range_is_one_line(bad: str, tmp_path: Path) -> None:
    result = CliRunner().invoke(main, ["score", "--weight", bad, "--cache-dir", str(tmp_path)])
    assert result.exit_code == 2 and "Traceback" not in result.output
    errors = [line for line in result.output.splitlines() if line.startswith("Error:")]
    assert len(errors) == 1, result.output
    assert f"'{bad}': use a number >= 0 or `auto` (at most 10000)" in errors[0]
    with pytest.raises(CombineError, match="use a number from 0 to 10000"):
        Combination(SUM, weight=float(bad))


def test_score_options_default_to_the_config(tmp_path: Path) -> None:
    """`moee score --help` shows ScoreConfig's defaults, not a second copy of them."""
    result = CliRunner().invoke(main, ["score", "--help"], terminal_width=200)
    assert result.exit_code == 0
    help_text = " ".join(result.output.split())
    for option, value in [
        ("--method", "HS, RW, MoEE-concat, MoEE-sum"),
        ("--weight", "1.0"),
        ("--rw", "logits"),
        ("--zscore-fit", "split"),
        ("--output", "results"),
    ]:
        assert option in help_text and f"[default: {value}]" in help_text, option
