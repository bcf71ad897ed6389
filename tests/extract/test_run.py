"""run_extract end to end: texts recorded (a child or a thread), reused without mteb on a rerun."""

from __future__ import annotations

import importlib
import subprocess
import sys
import textwrap
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from moee_pipeline.cache import layout, parts, snapshots, store
from moee_pipeline.errors import MoeeError
from moee_pipeline.extract import recorder
from moee_pipeline.extract.recorder import TaskRecorder
from moee_pipeline.extract.run import run_extract
from moee_pipeline.extract.settings import ExtractOptions
from moee_pipeline.models.loading import ModelSpec
from moee_pipeline.prompts import resolve_prompt
from moee_pipeline.tasks import TaskError, load_task, task_texts
from tests.support.fault_hook import Faults

TASKS = ["MoeeToySTS", "MoeeToyClassification"]


def _extract(model: Path, cache: Path, **overrides: Any) -> list[Any]:
    options = ExtractOptions(cache_dir=cache, progress=False, **overrides)
    return list(
        run_extract(
            ModelSpec(str(model), device="cpu"),
            tasks=TASKS,
            prompts=[resolve_prompt("none")],
            options=options,
        )
    )


def _ids(cache: Path, model: Path, task: str) -> set[str]:
    return store.existing_text_ids(
        layout.task_dir(cache, model=str(model), prompt_id="none", task=task)
    )


@pytest.mark.slow
def test_rerun_reuses_recorded_texts_without_loading_tasks(
    tiny_model: Callable[[str], Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    model, cache = tiny_model("olmoe"), tmp_path / "cache"
    first = _extract(model, cache)
    for task in TASKS:  # what was extracted is exactly what mteb's evaluation encodes
        expected = {parts.text_id(t) for t in task_texts(load_task(task))}
        assert _ids(cache, model, task) == expected
        assert snapshots.recorded_task_texts(task, cache_dir=cache) is not None

    def refuse(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("texts were recorded again on a rerun")

    before = {task: _ids(cache, model, task) for task in TASKS}
    monkeypatch.setattr(recorder.subprocess, "Popen", refuse)  # no child
    monkeypatch.setattr(recorder, "record", refuse)  # nor a thread
    again = _extract(model, cache, overwrite=True)
    assert [s.rows for s in again] == [s.rows for s in first]
    assert all(s.new_rows == s.rows for s in again)
    assert all(s.extra["padded_tokens"] >= s.tokens > 0 for s in again)
    assert {task: _ids(cache, model, task) for task in TASKS} == before


@pytest.mark.slow
def test_a_failing_recording_process_stops_the_run_before_the_model_loads(
    tiny_model: Callable[[str], Path],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    faults: Faults,
) -> None:
    def refuse(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("the model loaded although a task could not be loaded")

    monkeypatch.setattr("moee_pipeline.models.loading.load_model", refuse)
    faults.arm("snapshot", "enospc")  # the recorder's snapshot write fails (child or thread)
    cache = tmp_path / "cache"
    with pytest.raises(MoeeError, match="No space left on device"):
        _extract(tiny_model("olmoe"), cache)
    assert not list(cache.glob(f"features/**/{store.MANIFEST}"))


TRANSPORTS = pytest.mark.parametrize("in_process", [False, True], ids=["child", "thread"])


@TRANSPORTS
def test_recorder_raises_the_task_error_as_itself(tmp_path: Path, in_process: bool) -> None:
    names = ["MoeeToySTS", "NoSuchTask"]
    with TaskRecorder(names, cache_dir=tmp_path, in_process=in_process) as rec:
        assert rec.splits("MoeeToySTS") == ["test"]
        with pytest.raises(TaskError, match="unknown task 'NoSuchTask'"):
            rec.splits("NoSuchTask")
        with pytest.raises(TaskError, match="unknown task"):
            rec.texts("MoeeToySTS").result()  # every task is loaded before any is recorded


@TRANSPORTS
def test_recorder_texts_are_the_in_process_recording(tmp_path: Path, in_process: bool) -> None:
    with TaskRecorder(TASKS, cache_dir=tmp_path / "cache", in_process=in_process) as rec:
        got = {name: rec.texts(name).result(timeout=120) for name in TASKS}
    assert got == {name: task_texts(load_task(name)) for name in TASKS}
    for name in TASKS:  # and the lists are kept beside the snapshots for the next run
        kept = snapshots.recorded_task_texts(name, cache_dir=tmp_path / "cache")
        assert kept is not None and snapshots.merge_split_texts(kept.values()) == got[name]


def test_recorder_without_tasks_starts_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def refuse(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("a recorder was started")

    monkeypatch.setattr(recorder.subprocess, "Popen", refuse)
    monkeypatch.setattr(recorder.threading, "Thread", refuse)
    with TaskRecorder([], cache_dir=tmp_path):
        pass


def test_a_process_with_the_heavy_libraries_imported_records_on_a_thread(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in recorder._HEAVY_IMPORTS:  # what a notebook or this test session already has
        importlib.import_module(name)

    def refuse(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("a child process started although everything is imported")

    monkeypatch.setattr(recorder.subprocess, "Popen", refuse)
    with TaskRecorder(["MoeeToySTS"], cache_dir=tmp_path) as rec:
        assert rec.texts("MoeeToySTS").result(timeout=120) == task_texts(load_task("MoeeToySTS"))


@pytest.mark.slow
def test_a_process_still_importing_transformers_records_in_a_child() -> None:
    # the CLI with toy tasks: the task registry has imported mteb and datasets, not the rest
    script = textwrap.dedent(
        """
        import sys, tempfile
        from pathlib import Path
        from moee_pipeline.extract import recorder
        from moee_pipeline.tasks.registry import select_tasks
        select_tasks(tasks=["MoeeToySTS"])
        assert "mteb" in sys.modules and "transformers" not in sys.modules
        with tempfile.TemporaryDirectory() as folder:
            with recorder.TaskRecorder(["MoeeToySTS"], cache_dir=Path(folder)) as rec:
                print(rec._process is not None, len(rec.texts("MoeeToySTS").result()))
        """
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.split() == ["True", str(len(task_texts(load_task("MoeeToySTS"))))]


def test_a_bug_on_the_recording_thread_reaches_the_caller_as_itself(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(request: dict[str, Any], send: Callable[[dict[str, Any]], None]) -> None:
        raise ZeroDivisionError("a bug")

    monkeypatch.setattr(recorder, "record", broken)
    recording = TaskRecorder(["MoeeToySTS"], cache_dir=tmp_path, in_process=True)
    with recording, pytest.raises(ZeroDivisionError, match="a bug"):
        recording.splits("MoeeToySTS")


#: A child's start-up hook: fail its first cache write as a bug would, or kill it there.
_CHILD_FAULT = """
import os, signal, sys
def _hook(event, args):
    if event == "moee_pipeline.replace":
        if os.environ["MOEE_TEST_CHILD"] == "kill":
            os.kill(os.getpid(), signal.SIGKILL)
        raise ZeroDivisionError("a bug in the child")
sys.addaudithook(_hook)
"""


@pytest.mark.parametrize(
    ("fault", "line"),
    [("raise", r"\(ZeroDivisionError: a bug in the child\): a bug; its traceback is above"),
     ("kill", r"killed by SIGKILL \(out of memory\?\); rerun to go on")],
)  # fmt: skip
def test_a_child_that_fails_unexpectedly_says_how(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fault: str, line: str
) -> None:
    site = tmp_path / "site"
    site.mkdir()
    (site / "sitecustomize.py").write_text(_CHILD_FAULT)
    monkeypatch.setenv("PYTHONPATH", str(site))  # the child's start-up only, not this process
    monkeypatch.setenv("MOEE_TEST_CHILD", fault)
    recording = TaskRecorder(["MoeeToySTS"], cache_dir=tmp_path / "cache", in_process=False)
    with recording, pytest.raises(recorder.RecordingError, match=line) as error:
        recording.splits("MoeeToySTS")  # the child fails writing the task's snapshot
    assert "exit status" not in str(error.value) and "\n" not in str(error.value)


def test_the_cli_path_imports_no_torch_transformers_or_mteb_before_the_run() -> None:
    script = textwrap.dedent(
        """
        import sys
        import moee_pipeline.cli.extract, moee_pipeline.extract.run
        from moee_pipeline.extract.settings import ExtractOptions
        from moee_pipeline.models.spec import ModelSpec
        from moee_pipeline.models.placement import Placement, check_placement
        from moee_pipeline.tasks.registry import select_tasks
        select_tasks(tasks=["STS12", "EmotionClassification"])
        spec = ModelSpec("m")
        check_placement(Placement(None, ()), quantization=spec.quantization, device="auto")
        print(sorted(m for m in ("torch", "transformers", "mteb", "datasets") if m in sys.modules))
        """
    )
    out = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True
    ).stdout
    assert out.split()[-1] == "[]"


@pytest.mark.slow
def test_rerun_imports_neither_mteb_nor_datasets(
    tiny_model: Callable[[str], Path], tmp_path: Path
) -> None:
    model, cache = tiny_model("olmoe"), tmp_path / "cache"
    _extract(model, cache)
    script = textwrap.dedent(
        f"""
        import sys
        from pathlib import Path
        from moee_pipeline.extract.run import run_extract
        from moee_pipeline.extract.settings import ExtractOptions
        from moee_pipeline.models.loading import ModelSpec
        from moee_pipeline.prompts import resolve_prompt
        options = ExtractOptions(cache_dir=Path({str(cache)!r}), progress=False, overwrite=True)
        done = list(run_extract(ModelSpec({str(model)!r}, device="cpu"), tasks={TASKS!r},
                                prompts=[resolve_prompt("none")], options=options))
        assert all(s.new_rows > 0 for s in done), done
        print("mteb" in sys.modules, "datasets" in sys.modules)
        """
    )
    out = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True
    ).stdout
    assert out.split()[-2:] == ["False", "False"]
