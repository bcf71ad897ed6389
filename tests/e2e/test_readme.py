"""The README's pandas example runs against a real cache."""

from __future__ import annotations

import copy
import json
import re
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from moee_pipeline.extract.pipeline import extract_task
from moee_pipeline.extract.settings import ExtractOptions
from moee_pipeline.models.loading import ModelSpec, load_model
from moee_pipeline.prompts import resolve_prompt
from tests.support.paths import README


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
    assert isinstance(df, pd.DataFrame)
    assert len(df) == 3 and set(df["task"]) == {"STS12"}
    assert isinstance(rw, np.ndarray) and rw.shape == (3, 3 * 8) and rw.dtype == np.float32


def test_readme_generated_blocks_match_their_results_files() -> None:
    from benchmarks.readme import README as BENCH_README
    from benchmarks.readme import newest_results, sections, stale

    text = BENCH_README.read_text(encoding="utf-8")
    blocks = sections()
    assert [name for name, _, _ in blocks] == [
        "bench-results",
        "ray-results",
        "integrity-results",
        "storage-results",
        "retrieval-results",
    ]
    for _, path, section in blocks:
        assert path.name in section  # each block names the file its numbers come from
    _, data = newest_results()
    ratio = data["extraction"]["small-3000"]["ratio_one_pass_median"]
    assert f"{ratio:.2f}x" in blocks[0][2]
    assert stale(text, blocks) == [], "README stale: run python -m benchmarks.readme"


def test_a_changed_number_in_a_results_file_changes_its_block(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import benchmarks.readme as bench_readme

    ray_path, ray = bench_readme.newest_ray_results()
    slower = copy.deepcopy(ray)
    slower["ray"]["local_seconds_median"] += 100
    before, after = (bench_readme.render_ray(ray_path, d) for d in (ray, slower))
    local = "{:.0f} s with the local engine"
    assert local.format(ray["ray"]["local_seconds_median"]) in before
    assert local.format(slower["ray"]["local_seconds_median"]) in after
    quiet = copy.deepcopy(ray)
    quiet["load_avg_at_start"][0] = quiet["load_avg_at_end"][0] = 0.5
    assert "so noisy" not in bench_readme.render_ray(ray_path, quiet)

    integrity_path = bench_readme.INTEGRITY
    integrity = json.loads(integrity_path.read_text(encoding="utf-8"))
    costly = copy.deepcopy(integrity)
    costly["median_s"]["hashed"] = integrity["median_s"]["unhashed"] + 5
    rendered = bench_readme.render_integrity(integrity_path, costly)
    assert f"took {costly['median_s']['hashed']:.2f} s instead of" in rendered
    assert "small next to" not in rendered

    storage = json.loads(bench_readme.STORAGE.read_text(encoding="utf-8"))
    moved = copy.deepcopy(storage)
    moved["dtypes"]["float16"]["max_score_change"] = 0.0123
    rendered = bench_readme.render_storage(bench_readme.STORAGE, moved)
    assert "| 1.230 (" in rendered  # the largest change, x100, and where
    assert rendered != bench_readme.render_storage(bench_readme.STORAGE, storage)

    retrieval_path, retrieval = bench_readme.newest_retrieval_results()
    heavier = copy.deepcopy(retrieval)
    largest = max(heavier["sizes"], key=lambda size: size["docs"])
    largest["runs"][0]["peak_rss_mb"] += 2048
    measured, changed = (
        bench_readme.render_retrieval(retrieval_path, d) for d in (retrieval, heavier)
    )
    peak = "| {:.2f} GiB |"
    assert peak.format(largest["runs"][0]["peak_rss_mb"] / 1024) in changed
    assert measured != changed and retrieval_path.name in changed

    # --check names the stale block; a rewrite makes the README match again
    readme = tmp_path / "README.md"
    text = bench_readme.README.read_text(encoding="utf-8")
    readme.write_text(bench_readme.rewrite(text, after), encoding="utf-8")
    monkeypatch.setattr(bench_readme, "README", readme)
    with pytest.raises(SystemExit, match=f"ray-results \\(from {ray_path.name}\\)") as stale:
        bench_readme.main(["--check"])
    assert "bench-results" not in str(stale.value)
    bench_readme.main([])
    assert readme.read_text(encoding="utf-8") == text
    bench_readme.main(["--check"])


def test_readme_claim_scoring_imports_no_torch() -> None:
    code = "import sys, moee_pipeline.score.run; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def _layout_block() -> str:
    text = README.read_text(encoding="utf-8")
    section = text[text.index("## Layout") :]
    return section[section.index("```\n") + 4 : section.index("\n```", section.index("```\n") + 4)]


def test_readme_layout_names_every_module_of_the_tree() -> None:
    """The Layout section is the tree: each module is named under its folder's entry."""
    package = README.parent / "moee_pipeline"
    block = _layout_block()
    folders = re.split(r"\n  (?=\w+/ )", block.split("\ntests/")[0])
    described = {chunk.split("/")[0].strip(): chunk for chunk in folders[1:]}
    top = folders[0]
    missing = []
    for module in sorted(package.rglob("*.py")):
        if module.name == "__init__.py":
            continue
        folder = module.parent.relative_to(package).as_posix()
        where = top if folder == "." else described.get(folder, "")
        name = module.name if folder == "." else module.stem
        if not re.search(rf"(?<![\w.]){re.escape(name)}(?![\w])", where):
            missing.append(module.relative_to(package).as_posix())
    assert not missing, f"README Layout does not name: {missing}"
    folders_in_tree = {
        d.name for d in package.iterdir() if d.is_dir() and (d / "__init__.py").exists()
    }
    assert folders_in_tree == set(described), "README Layout folders differ from the package's"
