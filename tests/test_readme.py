"""The README's pandas example runs against a real cache."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from moee_pipeline.extract.pipeline import extract_task
from moee_pipeline.extract.settings import ExtractOptions
from moee_pipeline.models.loading import ModelSpec, load_model
from moee_pipeline.prompts import resolve_prompt

README = Path(__file__).resolve().parents[1] / "README.md"


def python_blocks() -> list[str]:
    return re.findall(r"```python\n(.*?)```", README.read_text(encoding="utf-8"), flags=re.S)


def test_readme_pandas_example_runs(
    tiny_model: Callable[[str], Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (example,) = [b for b in python_blocks() if "read_parquet" in b]
    assert len(example.strip().splitlines()) <= 5
    model = tiny_model("olmoe")
    loaded = load_model(ModelSpec(str(model)))
    texts = ["A cat sits.", "A dog runs.", "Stocks fell."]
    options = ExtractOptions(cache_dir=tmp_path / "cache", progress=False)
    for task in ("STS12", "STS13"):
        extract_task(
            loaded, task=task, texts=texts, prompt=resolve_prompt("none"), options=options,
            model_id=str(model),
        )  # fmt: skip
    monkeypatch.chdir(tmp_path)
    scope: dict[str, object] = {}
    exec(compile(example, "README.md", "exec"), scope)
    df, rw = scope["df"], scope["rw"]
    assert len(df) == 3 and set(df["task"]) == {"STS12"}  # type: ignore[index]
    assert isinstance(rw, np.ndarray) and rw.shape == (3, 3 * 8) and rw.dtype == np.float32


def test_readme_benchmark_numbers_come_from_the_newest_results_file() -> None:
    from benchmarks.readme import README as BENCH_README
    from benchmarks.readme import newest_results, render, rewrite

    text = BENCH_README.read_text(encoding="utf-8")
    path, data = newest_results()
    section = render(path, data)
    assert path.name in section
    assert f"{data['extraction']['small-3000']['ratio_one_pass_median']:.2f}x" in section
    assert rewrite(text, section) == text, "README stale: run python -m benchmarks.readme"
