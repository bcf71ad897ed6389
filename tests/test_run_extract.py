"""run_extract end to end: texts recorded in the background, reused without mteb on a rerun."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from moee_pipeline.cache import snapshots, store
from moee_pipeline.extract.pipeline import ExtractOptions, run_extract
from moee_pipeline.models.loading import ModelSpec
from moee_pipeline.prompts import resolve_prompt
from moee_pipeline.tasks import TaskError, load_task, recording, task_texts

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
        store.task_dir(cache, model=str(model), prompt_id="none", task=task)
    )


@pytest.mark.slow
def test_rerun_reuses_recorded_texts_without_loading_tasks(
    tiny_model: Callable[[str], Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    model, cache = tiny_model("olmoe"), tmp_path / "cache"
    first = _extract(model, cache)
    for task in TASKS:  # what was extracted is exactly what mteb's evaluation encodes
        expected = {store.text_id(t) for t in task_texts(load_task(task))}
        assert _ids(cache, model, task) == expected
        assert snapshots.recorded_task_texts(task, cache_dir=cache) is not None

    def refuse(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("task data loaded or recorded again on a rerun")

    before = {task: _ids(cache, model, task) for task in TASKS}
    monkeypatch.setattr("moee_pipeline.tasks.load_task", refuse)
    monkeypatch.setattr(recording, "record_split", refuse)
    again = _extract(model, cache, overwrite=True)
    assert [s.rows for s in again] == [s.rows for s in first]
    assert all(s.new_rows == s.rows for s in again)
    assert all(s.extra["padded_tokens"] >= s.tokens > 0 for s in again)
    assert {task: _ids(cache, model, task) for task in TASKS} == before


@pytest.mark.slow
def test_recording_error_in_the_background_stops_the_run(
    tiny_model: Callable[[str], Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(task: Any, split: str) -> list[str]:
        raise TaskError(f"{task.metadata.name} feeds non-text inputs")

    monkeypatch.setattr(recording, "record_split", broken)
    cache = tmp_path / "cache"
    with pytest.raises(TaskError, match="non-text"):
        _extract(tiny_model("olmoe"), cache)
    assert not list(cache.glob(f"features/**/{store.MANIFEST}"))


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
        from moee_pipeline.extract.pipeline import ExtractOptions, run_extract
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
