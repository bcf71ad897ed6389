"""`moee ls` on a cache written by the real extraction code with a tiny random OLMoE.

The cache holds one complete task, one interrupted task (parts, no manifest) and one task of which
only shard 0 of 2 ran. Expected numbers are read back from the files with pyarrow and os.stat.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner

from moee_pipeline.cache import layout, parts, store
from moee_pipeline.cache.inventory import inventory
from moee_pipeline.cli import main
from moee_pipeline.extract.pipeline import extract_task
from moee_pipeline.extract.settings import ExtractOptions
from moee_pipeline.models.loading import ModelSpec, load_model
from moee_pipeline.prompts import Prompt, resolve_prompt
from tests.support.trees import unchanged

TEXTS = [f"Sentence number {i} is about {w}." for i, w in enumerate(["cats", "dogs", "rain"] * 4)]


def fake_part(directory: Path, name: str, n: int, *, shard: int = 0) -> None:
    """A part written with the store's own schema and writer, holding n random rows."""
    directory.mkdir(parents=True, exist_ok=True)
    meta = {"model": "org/fake", "n_moe_layers": 2, "n_experts": 4, "hidden_size": 6}
    schema = parts.feature_schema(meta)
    rng = np.random.default_rng(shard)
    columns = [
        pa.array([f"{shard}-{i}" for i in range(n)]),
        pa.array(["t"] * n),
        pa.array([3] * n, pa.int32()),
        pa.array([False] * n),
        *[
            parts.vector_array(rng.normal(size=(n, 8 if c.startswith("rw") else 6)))
            for c in parts.VECTOR_COLUMNS
        ],
    ]
    parts.write_part(pa.table(columns, schema=schema), directory / name)


def test_hand_made_cache_without_a_model(tmp_path: Path) -> None:
    partial = layout.task_dir(tmp_path, model="org/fake", prompt_id="none", task="P")
    fake_part(partial, "part-00000.parquet", 3)
    fake_part(partial, "part-00001.parquet", 4)
    sharded = layout.task_dir(tmp_path, model="org/fake", prompt_id="none", task="S")
    fake_part(sharded, "part-0of3-00000.parquet", 5)
    fake_part(sharded, "part-2of3-00000.parquet", 2, shard=2)
    store.write_json_atomic(sharded / "_manifest.0of3.json", {"rows": 5, "texts_in_task": 20})
    (p_row, s_row) = inventory(cache_dir=tmp_path)
    assert (p_row.task, p_row.status, p_row.rows, p_row.progress) == ("P", "partial", 7, None)
    assert (p_row.model, p_row.n_moe_layers, p_row.n_experts) == ("org/fake", 2, 4)
    assert (s_row.status, s_row.rows, s_row.shards_done, s_row.shards) == ("sharded", 7, 1, 3)
    assert s_row.progress == pytest.approx(7 / 20)


@pytest.fixture(scope="module")
def cache(
    tiny_model: Callable[[str], Path], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Path]:
    """The cache the module's tests list (read only: copy before changing)."""
    root = tmp_path_factory.mktemp("cache")
    model_dir = tiny_model("olmoe")
    loaded = load_model(ModelSpec(str(model_dir), device="cpu"))
    none, eol = resolve_prompt("none"), resolve_prompt("prompteol")

    def run(task: str, texts: list[str], prompt: Prompt = none, **kw: Any) -> None:
        options = ExtractOptions(
            cache_dir=root, batch_size=4, rows_per_shard=4, progress=False, **kw
        )
        extract_task(
            loaded, task=task, texts=texts, prompt=prompt, options=options, model_id=str(model_dir)
        )

    run("Done", TEXTS)
    run("Half", TEXTS, prompt=eol)
    run("Half", TEXTS)  # then "killed": the manifest and the last two parts never came
    half = layout.task_dir(root, model=str(model_dir), prompt_id=none.id, task="Half")
    (half / store.MANIFEST).unlink()
    for part in sorted(half.glob("part-*.parquet"))[1:]:
        part.unlink()
    run("Split", TEXTS, shard=(0, 2))
    with unchanged(root, "the module's cache"):
        yield root


def parquet_rows(directory: Path) -> int:
    return sum(pq.read_table(p).num_rows for p in directory.glob("part-*.parquet"))


@pytest.mark.slow
def test_complete_partial_and_sharded(cache: Path) -> None:
    rows = {(r.task, r.prompt): r for r in inventory(cache_dir=cache)}
    assert len(rows) == 4
    done = rows[("Done", "none")]
    assert (done.status, done.rows, done.texts_in_task, done.progress) == ("complete", 12, 12, 1.0)
    assert (done.n_moe_layers, done.n_experts, done.hidden_size) == (3, 8, 64)
    assert done.size_bytes == sum(p.stat().st_size for p in Path(done.path).iterdir())
    assert done.made and done.made[:2] == "20"

    half = rows[("Half", "none")]
    assert half.status == "partial" and half.rows == parquet_rows(Path(half.path)) == 4
    assert half.texts_in_task == 12 and half.progress == pytest.approx(4 / 12)
    assert half.n_moe_layers == 3 and half.hidden_size == 64  # read from the part's schema

    split = rows[("Split", "none")]
    in_shard = parquet_rows(Path(split.path))
    assert 0 < in_shard < 12 and split.rows == in_shard
    assert (split.status, split.shards_done, split.shards) == ("sharded", 1, 2)
    assert split.progress == pytest.approx(in_shard / 12)


@pytest.mark.slow
def test_first_run_killed_still_shows_progress(cache: Path, tmp_path: Path) -> None:
    """No manifest anywhere (no other prompt either): the parts themselves know the total."""
    source = next(
        d for k, d in layout.iter_entries(cache) if k.task == "Half" and k.prompt_id == "none"
    )
    target = tmp_path / source.relative_to(cache)
    target.mkdir(parents=True)
    for part in source.glob("part-*.parquet"):
        (target / part.name).write_bytes(part.read_bytes())
    (row,) = inventory(cache_dir=tmp_path)
    assert row.status == "partial" and row.rows == 4
    assert row.texts_in_task == 12 and row.progress == pytest.approx(4 / 12)


@pytest.mark.slow
def test_cli_ls_text_and_json(cache: Path) -> None:
    runner = CliRunner()
    result = runner.invoke(main, ["ls", "--cache-dir", str(cache), "--json"])
    assert result.exit_code == 0, result.output
    payload = json.loads(result.output)
    assert {(r["task"], r["status"]) for r in payload} == {
        ("Done", "complete"),
        ("Half", "complete"),
        ("Half", "partial"),
        ("Split", "sharded"),
    }
    assert all(r["n_experts"] == 8 for r in payload)
    text = runner.invoke(main, ["ls", "--cache-dir", str(cache)]).output
    assert "partial: 4/12 (33%), no manifest" in text
    assert "sharded: 1/2 shards done" in text and "3 x 8" in text
    empty = runner.invoke(main, ["ls", "--cache-dir", str(cache / "nothing")])
    assert empty.exit_code == 0 and "no cached features" in empty.output


@pytest.mark.slow
def test_a_truncated_part_marks_its_entry_damaged_not_the_whole_listing(
    cache: Path, tmp_path: Path
) -> None:
    import shutil

    copy = tmp_path / "copy"
    shutil.copytree(cache, copy)
    done = next(d for k, d in layout.iter_entries(copy) if k.task == "Done")
    part = sorted(done.glob("part-*.parquet"))[0]
    part.write_bytes(part.read_bytes()[:100])
    rows = {(r.task, r.prompt): r for r in inventory(cache_dir=copy)}
    assert len(rows) == 4
    damaged = rows[("Done", "none")]
    assert damaged.status.startswith(f"damaged: unreadable {part.name}")
    assert "moee verify --repair" in damaged.status
    assert rows[("Half", "prompteol")].status == "complete"
