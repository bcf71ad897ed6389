"""What reaches the terminal: our own progress and results; other libraries' bars and warnings
only with `-v`; the public API alone in `dir(moee_pipeline)`; error lines short with what to do.
(`make demo` as a whole: tests/e2e/test_demo.py.)"""

from __future__ import annotations

import errno
import inspect
import logging
import threading
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner

import moee_pipeline
from moee_pipeline.cli import main
from moee_pipeline.cli.options import MAX_ERROR_LINE, fit_line, one_line
from moee_pipeline.errors import first_line
from moee_pipeline.verbosity import configure_logging, library_output_shown, log_level


@pytest.fixture
def verbose() -> Iterator[None]:
    """Logging at INFO, as `moee -v` sets it; restored afterwards."""
    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.INFO)
    yield
    root.setLevel(level)


# ---------------------------------------------------------------------------------------
# dir(moee_pipeline)
# ---------------------------------------------------------------------------------------


def test_dir_shows_the_public_api_only() -> None:
    names = dir(moee_pipeline)
    assert names == sorted([*moee_pipeline.__all__, "__version__"])
    for helper in ("Any", "annotations", "importlib", "_PUBLIC", "_importlib", "_Any"):
        assert helper not in names
    for name in moee_pipeline.__all__:  # every listed name resolves
        assert getattr(moee_pipeline, name) is not None
    with pytest.raises(AttributeError, match="no attribute 'Any'"):
        moee_pipeline.Any  # noqa: B018


# ---------------------------------------------------------------------------------------
# Verbosity: -v lets library output through
# ---------------------------------------------------------------------------------------


def test_verbose_count_maps_to_logging_levels() -> None:
    assert [log_level(v) for v in (0, 1, 2, 5)] == [
        logging.WARNING, logging.INFO, logging.DEBUG, logging.DEBUG
    ]  # fmt: skip
    root = logging.getLogger()
    level = root.level
    try:
        configure_logging(1)
        assert root.level == logging.INFO and library_output_shown()
        configure_logging(0)
        assert root.level == logging.WARNING and not library_output_shown()
    finally:
        root.setLevel(level)


# ---------------------------------------------------------------------------------------
# mteb and datasets while tasks are evaluated (moee_pipeline.quiet)
# ---------------------------------------------------------------------------------------


def test_mteb_summarization_bar_is_what_quiet_swaps() -> None:
    """The one mteb bar without a switch: a module-level `tqdm` that the evaluator calls."""
    import importlib

    from mteb._evaluators.text.summarization_evaluator import SummarizationEvaluator

    from moee_pipeline.quiet import SUMMARIZATION_EVALUATOR

    module = importlib.import_module(SUMMARIZATION_EVALUATOR)
    assert module is inspect.getmodule(SummarizationEvaluator)
    assert hasattr(module, "tqdm")
    source = inspect.getsource(SummarizationEvaluator.__call__)
    assert 'desc="Scoring"' in source and "tqdm(" in source


def test_quiet_libraries_turns_the_switches_off_and_restores_them() -> None:
    import datasets
    from mteb._evaluators.text import summarization_evaluator as module

    from moee_pipeline.quiet import quiet_libraries

    bar, bars_off = module.tqdm, datasets.are_progress_bars_disabled()
    with quiet_libraries():
        assert datasets.are_progress_bars_disabled()
        assert module.tqdm is not bar
        assert module.tqdm(range(3)).disable  # the evaluator's bar draws nothing
        with quiet_libraries():  # nested: the inner exit restores nothing yet
            pass
        assert datasets.are_progress_bars_disabled() and module.tqdm is not bar
    assert module.tqdm is bar
    assert datasets.are_progress_bars_disabled() == bars_off


def test_quiet_libraries_hides_library_warnings_only_inside(
    capsys: pytest.CaptureFixture[str],
) -> None:
    from moee_pipeline.quiet import quiet_libraries

    with quiet_libraries():
        warnings.warn("inside: lbfgs failed to converge", UserWarning, stacklevel=1)
    assert "inside" not in capsys.readouterr().err
    with pytest.warns(UserWarning, match="outside"):
        warnings.warn("outside", UserWarning, stacklevel=1)


def test_quiet_libraries_from_two_threads_restores_once_both_leave() -> None:
    from mteb._evaluators.text import summarization_evaluator as module

    from moee_pipeline.quiet import quiet_libraries

    bar = module.tqdm
    entered, release = threading.Event(), threading.Event()

    def other() -> None:
        with quiet_libraries():
            entered.set()
            release.wait(10)

    thread = threading.Thread(target=other)
    thread.start()
    assert entered.wait(10)
    with quiet_libraries():
        pass  # leaves first: the other thread still evaluates
    assert module.tqdm is not bar
    release.set()
    thread.join()
    assert module.tqdm is bar


def test_quiet_libraries_leaves_library_output_alone_with_verbose(verbose: None) -> None:
    import datasets
    from mteb._evaluators.text import summarization_evaluator as module

    from moee_pipeline.quiet import quiet_libraries

    bar = module.tqdm
    with quiet_libraries():
        assert not datasets.are_progress_bars_disabled()
        assert module.tqdm is bar


# ---------------------------------------------------------------------------------------
# transformers while a model loads or is saved (moee_pipeline.models.quiet)
# ---------------------------------------------------------------------------------------


def test_quiet_transformers_keeps_the_hub_download_bars() -> None:
    from huggingface_hub import utils as hub_utils
    from transformers.utils import logging as hf_logging

    from moee_pipeline.models.quiet import quiet_transformers

    before = (
        hf_logging.is_progress_bar_enabled(),
        hub_utils.are_progress_bars_disabled(),
        hf_logging.get_verbosity(),
    )
    with quiet_transformers():
        assert not hf_logging.is_progress_bar_enabled()
        assert hub_utils.are_progress_bars_disabled() == before[1]  # downloads keep their bar
        assert hf_logging.get_verbosity() == hf_logging.ERROR
    after = (
        hf_logging.is_progress_bar_enabled(),
        hub_utils.are_progress_bars_disabled(),
        hf_logging.get_verbosity(),
    )
    assert after == before


def test_quiet_transformers_leaves_them_alone_with_verbose(verbose: None) -> None:
    from transformers.utils import logging as hf_logging

    from moee_pipeline.models.quiet import quiet_transformers

    with quiet_transformers():
        assert hf_logging.is_progress_bar_enabled()


def test_load_model_writes_nothing_and_logs_its_memory_report(
    tiny_model: Callable[[str], Path],
    capfd: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    from moee_pipeline.models.loading import ModelSpec, load_model

    with caplog.at_level(logging.INFO, logger="moee_pipeline.models.loading"):
        loaded = load_model(ModelSpec(str(tiny_model("olmoe"))))
    out, err = capfd.readouterr()
    assert out == "" and "Loading weights" not in err and "experts" not in err
    report = loaded.info["weight_memory"]
    logged = [r.getMessage() for r in caplog.records if "by storage" in r.getMessage()]
    assert len(logged) == 1 and f"[{loaded.quantization}]" in logged[0]
    assert report["total_bytes"] == sum(report["by_part"].values())


def test_tiny_model_build_writes_nothing(
    tokenizer_dir: Path, tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    from moee_pipeline.testing.tiny import build_tiny_model, train_tokenizer

    train_tokenizer(tmp_path / "tokenizer")
    build_tiny_model("olmoe", tmp_path / "model", tokenizer_dir=tokenizer_dir)
    assert capfd.readouterr() == ("", "")


@pytest.mark.slow
def test_extract_prints_the_weight_memory_report_once_and_one_progress_bar(
    tiny_model: Callable[[str], Path], tmp_path: Path
) -> None:
    from moee_pipeline.cache import layout, store
    from moee_pipeline.models.memory import format_report

    model = str(tiny_model("olmoe"))
    args = ["extract", "--model", model, "--tasks", "MoeeToySTS", "--cache-dir", str(tmp_path)]
    first = CliRunner().invoke(main, [*args, "--prompt", "none", "--prompt", "tone"])
    assert first.exit_code == 0, first.output
    entry = layout.task_dir(tmp_path, model=model, prompt_id="none", task="MoeeToySTS")
    manifest = store.read_manifest(entry)
    assert manifest is not None
    expected = format_report(
        manifest["weight_memory"], title=f"{model} [{manifest['quantization']}]"
    )
    assert first.stdout.count(expected) == 1  # one load, one report, before the task lines
    assert first.stdout.index(expected) < first.stdout.index("MoeeToySTS [none]")
    assert "by storage" not in first.stderr
    bar = first.stderr.replace("\r", "\n").splitlines()
    assert first.stderr.count("\n") == 1, first.stderr  # one bar for the run's two pairs
    assert {line.split(":")[0] for line in bar if line.strip()} == {"extract"}
    assert any("MoeeToySTS [none]" in line for line in bar)
    assert any("MoeeToySTS [tone]" in line for line in bar)
    again = CliRunner().invoke(main, args)
    assert again.exit_code == 0 and "already complete" in again.stdout
    assert "by storage" not in again.stdout  # no model was loaded


# ---------------------------------------------------------------------------------------
# Error lines
# ---------------------------------------------------------------------------------------


def test_first_line_quotes_a_library_message_within_a_limit() -> None:
    error = ValueError("Could not open Parquet input source '/a/very/long/path': magic bytes\nmore")
    assert (
        first_line(error) == "Could not open Parquet input source '/a/very/long/path': magic bytes"
    )
    short = first_line(error, limit=30)
    assert len(short) == 30 and short.endswith("...")
    assert first_line(ValueError()) == "ValueError"


def test_os_errors_get_what_to_do() -> None:
    full = OSError(errno.ENOSPC, "No space left on device", "/cache/x/part-00000.parquet")
    line = one_line(full).message
    assert line.startswith("[Errno 28] No space left on device: '/cache/x/part-00000.parquet'; ")
    assert "free disk space" in line
    denied = one_line(PermissionError(errno.EACCES, "Permission denied", "/ro")).message
    assert "Permission denied: '/ro'; check its permissions" in denied
    other = one_line(OSError(errno.EIO, "Input/output error", "/x")).message
    assert other.endswith("; check the path and the disk")


def test_a_too_long_line_keeps_its_start_and_what_to_do(caplog: pytest.LogCaptureFixture) -> None:
    path = "/data/" + "deep/" * 60 + "part-00000.parquet"
    text = f"{path} cannot be read (damaged): run `moee verify --repair`, then `moee extract`"
    with caplog.at_level(logging.INFO, logger="moee_pipeline.cli.options"):
        line = fit_line(text)
    assert len(f"Error: {line}") == MAX_ERROR_LINE
    assert line.startswith("/data/deep/") and " ... " in line
    assert line.endswith("run `moee verify --repair`, then `moee extract`")
    assert text in caplog.text  # the whole message is in the log
    assert fit_line("short: do this") == "short: do this"


def test_the_memory_precheck_line_fits() -> None:
    from moee_pipeline.models.loading import ModelLoadError, check_fits

    def estimate(q: str) -> dict[str, int]:
        gib = 1024**3
        return {
            "total_bytes": {"nf4": 4, "int8": 7, "none": 13}[q] * gib,
            "largest_layer_bytes": gib,
        }

    with pytest.raises(ModelLoadError) as error:
        check_fits(
            "/home/someone/models/OLMoE-1B-7B-0924-Instruct",
            quantization="none",
            estimate=estimate,
            free_bytes=10 * 1024**3,
            device="cuda:0",
        )
    line = one_line(error.value).message
    assert len(f"Error: {line}") <= MAX_ERROR_LINE and "use --quantization nf4" in line


def test_other_settings_line_stays_short_for_long_model_paths(tmp_path: Path) -> None:
    from moee_pipeline.extract.reuse import check_same_settings
    from moee_pipeline.extract.settings import ExtractionError

    old = {"model": "/models/" + "a" * 150, "max_length": 512}
    new = {"model": "/models/" + "b" * 150, "max_length": 512}
    with pytest.raises(ExtractionError) as error:
        check_same_settings(old, new, where=tmp_path / "entry")
    line = one_line(error.value).message
    assert len(f"Error: {line}") <= MAX_ERROR_LINE
    assert line.endswith("rerun with --overwrite or use another --cache-dir")
    assert "was made with other settings" in line and " ... " not in line  # not cut


def test_not_extracted_line_fits_with_a_long_model_path_and_task(tmp_path: Path) -> None:
    from moee_pipeline.cache import store

    model = "/home/someone/experiments/checkpoints/OLMoE-1B-7B-0924-finetuned-step-12000"
    with pytest.raises(store.CacheError) as error:
        store.read_features(
            tmp_path,
            model=model,
            prompt_id="prompteol",
            task="TweetSentimentExtractionClassification",
        )
    line = one_line(error.value).message
    assert len(f"Error: {line}") <= MAX_ERROR_LINE and " ... " not in line
    assert line.endswith(
        f"--model {model} --prompt prompteol --tasks TweetSentimentExtractionClassification`"
    )
