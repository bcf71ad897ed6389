"""Extraction: cached features against transformers' own outputs, and the cache's guarantees."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow.parquet as pq
import pytest
import torch
from transformers import AutoModelForCausalLM

from moee_pipeline.cache import layout, parts, store
from moee_pipeline.extract import pipeline as extract
from moee_pipeline.extract.batching import encode_texts
from moee_pipeline.extract.hooks import NonFiniteFeatureError, PooledBatch, RouterCapture
from moee_pipeline.extract.pipeline import extract_task
from moee_pipeline.extract.settings import ExtractionError, ExtractOptions, TaskSummary
from moee_pipeline.models.loading import LoadedModel, ModelSpec, load_model
from moee_pipeline.prompts import resolve_prompt

TEXTS = [
    "The cat sat on the mat",
    "A man is playing a guitar on the stage tonight.",
    "",
    'He said "hello" to me',
    "short",
    "Is this a question?",
    " ".join(f"w{i}" for i in range(200)),  # longer than max_length: truncated
    "Markets fell sharply on Monday!",
    "Two dogs run across a green field",
    "The weather is sunny and warm today",
]
MAX_LENGTH = 48


def options(cache: Path, **overrides: Any) -> ExtractOptions:
    base: dict[str, Any] = {
        "cache_dir": cache,
        "batch_size": 4,
        "max_batch_tokens": 160,
        "max_length": MAX_LENGTH,
        "rows_per_shard": 3,
        "progress": False,
        "store_dtype": "float32",  # compared with transformers' outputs: stored exactly
    }
    return ExtractOptions(**{**base, **overrides})


def run(loaded: LoadedModel, model_dir: Path, cache: Path, **overrides: Any) -> TaskSummary:
    prompt = resolve_prompt(str(overrides.pop("prompt", "prompteol")))
    texts = overrides.pop("texts", TEXTS)
    return extract_task(
        loaded,
        task="T",
        texts=texts,
        prompt=prompt,
        options=options(cache, **overrides),
        model_id=str(model_dir),
    )


def read(cache: Path, model_dir: Path, prompt: str = "prompteol") -> store.Features:
    return store.read_features(
        cache, model=str(model_dir), prompt_id=prompt, task="T", columns=parts.VECTOR_COLUMNS
    )


def by_id(features: store.Features) -> dict[str, dict[str, np.ndarray]]:
    return {
        tid: {k: v[i] for k, v in features.arrays.items()}
        for i, tid in enumerate(features.text_ids)
    }


@pytest.fixture(scope="module")
def olmoe(tiny_model: Callable[[str], Path]) -> tuple[Path, LoadedModel]:
    path = tiny_model("olmoe")
    return path, load_model(ModelSpec(str(path)))


@pytest.mark.parametrize(
    "kind", ["olmoe", "qwen2_moe", "deepseek_v3", "deepseek_v2", "mixtral", "qwen3_moe"]
)
def test_features_equal_transformers_outputs(
    kind: str, tiny_model: Callable[[str], Path], tmp_path: Path
) -> None:
    """Every cached vector equals output_router_logits / hidden_states[-1], one text at a time."""
    model_dir = tiny_model(kind)
    loaded = load_model(ModelSpec(str(model_dir)))
    summary = run(loaded, model_dir, tmp_path)
    features = read(tmp_path, model_dir)
    assert summary.rows == len(TEXTS) == len(features.text_ids)

    reference = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32).eval()
    prompt = resolve_prompt("prompteol")
    encoded = encode_texts(loaded.tokenizer, prompt, TEXTS, max_length=MAX_LENGTH)
    rows = by_id(features)
    worst = 0.0
    for item in encoded:
        ids = torch.tensor([item.input_ids])
        with torch.no_grad():
            out = reference(input_ids=ids, output_router_logits=True, output_hidden_states=True)
        expected = {
            "rw_last": torch.cat([r[-1] for r in out.router_logits]),
            "rw_mean": torch.cat([r.mean(dim=0) for r in out.router_logits]),
            "hs_last": out.hidden_states[-1][0, -1],
            "hs_mean": out.hidden_states[-1][0].mean(dim=0),
        }
        got = rows[parts.text_id(TEXTS[item.index])]
        for name, value in expected.items():
            worst = max(worst, float(np.abs(value.numpy() - got[name]).max()))
    assert worst < 1e-4
    n_layers = len(out.router_logits)
    assert features.arrays["rw_last"].shape == (len(TEXTS), n_layers * loaded.n_experts)
    assert features.manifest["n_moe_layers"] == n_layers


def test_schema_metadata_and_manifest(olmoe: tuple[Path, LoadedModel], tmp_path: Path) -> None:
    model_dir, loaded = olmoe
    summary = run(loaded, model_dir, tmp_path)
    found = parts.part_files(summary.path)
    assert len(found) == 4  # 10 rows, 3 per part
    assert summary.path == (
        tmp_path / "features" / f"model={model_dir.name}" / "prompt=prompteol" / "task=T"
    )
    schema = pq.read_schema(found[0])
    width = 3 * 8  # 3 MoE layers x 8 experts
    assert schema.field("rw_last").type.list_size == width
    assert schema.field("hs_mean").type.list_size == 64
    meta = parts.schema_metadata(schema)
    for key in ("model", "revision", "quantization", "dtype", "prompt", "prompt_template"):
        assert key in meta
    assert meta["moe_layers"] == [0, 1, 2]
    assert (meta["n_moe_layers"], meta["n_experts"], meta["hidden_size"]) == (3, 8, 64)
    assert meta["schema_version"] == parts.SCHEMA_VERSION
    assert meta["versions"]["torch"] == torch.__version__
    manifest = store.read_manifest(summary.path)
    assert manifest is not None and manifest["rows"] == 10 and manifest["seconds"] >= 0
    table = pq.read_table(summary.path)
    assert set(table.column("text").to_pylist()) == set(TEXTS)
    assert sum(table.column("truncated").to_pylist()) == 1
    assert max(table.column("n_tokens").to_pylist()) == MAX_LENGTH


def test_duplicates_are_stored_once_and_rerun_skips(
    olmoe: tuple[Path, LoadedModel], tmp_path: Path
) -> None:
    model_dir, loaded = olmoe
    first = run(loaded, model_dir, tmp_path, texts=TEXTS + TEXTS[:3])
    assert first.rows == len(TEXTS)
    again = run(loaded, model_dir, tmp_path)
    assert again.skipped and again.rows == len(TEXTS)
    forced = run(loaded, model_dir, tmp_path, overwrite=True)
    assert not forced.skipped and forced.new_rows == len(TEXTS)
    assert len(read(tmp_path, model_dir).text_ids) == len(TEXTS)


def test_shards_together_equal_one_run(olmoe: tuple[Path, LoadedModel], tmp_path: Path) -> None:
    model_dir, loaded = olmoe
    whole = by_id(read_after(run(loaded, model_dir, tmp_path / "one"), tmp_path / "one", model_dir))
    split = tmp_path / "split"
    a = run(loaded, model_dir, split, shard=(0, 2))
    assert store.read_manifest(a.path) is None  # half a task is not complete
    b = run(loaded, model_dir, split, shard=(1, 2))
    assert a.rows + b.rows == len(TEXTS) and min(a.rows, b.rows) > 0
    merged = by_id(read(split, model_dir))
    assert merged.keys() == whole.keys()
    for tid, row in whole.items():
        for name, value in row.items():
            np.testing.assert_allclose(merged[tid][name], value, atol=1e-5)


def read_after(_summary: object, cache: Path, model_dir: Path) -> store.Features:
    return read(cache, model_dir)


KILLER = """
import os, signal, sys
from pathlib import Path
from moee_pipeline.extract import pipeline as extract
from moee_pipeline.extract.settings import ExtractOptions
from moee_pipeline.models.loading import ModelSpec, load_model
from moee_pipeline.prompts import resolve_prompt

texts = [f"text number {i} " + "word " * (i % 7) for i in range(40)]
original = extract.forward_pooled
calls = []

def dying(*args, **kwargs):
    calls.append(1)
    if len(calls) == int(sys.argv[3]):
        os.kill(os.getpid(), signal.SIGKILL)
    return original(*args, **kwargs)

extract.forward_pooled = dying
options = ExtractOptions(cache_dir=Path(sys.argv[2]), batch_size=3, rows_per_shard=2,
                                 max_length=48, progress=False, store_dtype="float32")
loaded = load_model(ModelSpec(sys.argv[1]))
extract.extract_task(loaded, task="T", texts=texts, prompt=resolve_prompt("none"),
                     options=options, model_id=sys.argv[1])
"""


@pytest.mark.slow
def test_resume_after_sigkill_keeps_parts_and_never_duplicates(
    olmoe: tuple[Path, LoadedModel], tmp_path: Path
) -> None:
    model_dir, loaded = olmoe
    script = tmp_path / "killer.py"
    script.write_text(textwrap.dedent(KILLER))
    cache = tmp_path / "cache"
    done = subprocess.run(
        [sys.executable, str(script), str(model_dir), str(cache), "9"], capture_output=True
    )
    assert done.returncode == -9, done.stderr.decode()[-2000:]
    folder = layout.task_dir(cache, model=str(model_dir), prompt_id="none", task="T")
    assert store.read_manifest(folder) is None
    kept = parts.part_files(folder)
    assert kept, "parts written before the kill must survive"
    kept_ids = store.existing_text_ids(folder)
    assert 0 < len(kept_ids) < 40
    mtimes = {p: p.stat().st_mtime_ns for p in kept}

    texts = [f"text number {i} " + "word " * (i % 7) for i in range(40)]
    summary = run(loaded, model_dir, cache, texts=texts, prompt="none", batch_size=3)
    assert summary.new_rows == 40 - len(kept_ids)
    assert all(p.stat().st_mtime_ns == m for p, m in mtimes.items())  # old parts untouched
    resumed = read(cache, model_dir, prompt="none")
    assert len(resumed.text_ids) == len(set(resumed.text_ids)) == 40
    clean = tmp_path / "clean"
    run(loaded, model_dir, clean, texts=texts, prompt="none")
    reference = by_id(read(clean, model_dir, prompt="none"))
    for tid, row in by_id(resumed).items():
        np.testing.assert_allclose(row["rw_last"], reference[tid]["rw_last"], atol=1e-5)


def test_parts_from_other_settings_are_refused(
    olmoe: tuple[Path, LoadedModel], tmp_path: Path
) -> None:
    model_dir, loaded = olmoe
    run(loaded, model_dir, tmp_path)
    folder = layout.task_dir(tmp_path, model=str(model_dir), prompt_id="prompteol", task="T")
    (folder / store.MANIFEST).unlink()  # pretend the run was interrupted
    with pytest.raises(ExtractionError, match="other settings"):
        run(loaded, model_dir, tmp_path, max_length=32)


def test_nan_feature_is_an_error_naming_the_text(
    tiny_model: Callable[[str], Path], tmp_path: Path
) -> None:
    model_dir = tiny_model("olmoe")
    loaded = load_model(ModelSpec(str(model_dir)))
    with torch.no_grad():
        loaded.routers[1].weight[3, 0] = float("nan")
    with pytest.raises(NonFiniteFeatureError, match="rw_last is NaN/inf"):
        run(loaded, model_dir, tmp_path)
    folder = layout.task_dir(tmp_path, model=str(model_dir), prompt_id="prompteol", task="T")
    assert store.read_manifest(folder) is None


def test_out_of_memory_batches_are_split_and_retried(
    olmoe: tuple[Path, LoadedModel], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    model_dir, loaded = olmoe
    original = extract.forward_pooled
    sizes: list[int] = []

    def small_only(
        loaded_: LoadedModel,
        capture: RouterCapture,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor,
    ) -> PooledBatch:
        sizes.append(input_ids.shape[0])
        if input_ids.shape[0] > 1:
            raise torch.OutOfMemoryError("simulated")
        return original(loaded_, capture, input_ids, attention_mask)

    monkeypatch.setattr(extract, "forward_pooled", small_only)
    summary = run(loaded, model_dir, tmp_path / "split")
    assert summary.rows == len(TEXTS) and max(sizes) > 1
    monkeypatch.setattr(extract, "forward_pooled", original)
    run(loaded, model_dir, tmp_path / "plain")
    split, plain = (
        by_id(read(tmp_path / "split", model_dir)),
        by_id(read(tmp_path / "plain", model_dir)),
    )
    for tid, row in plain.items():
        np.testing.assert_allclose(split[tid]["hs_last"], row["hs_last"], atol=1e-5)


def test_dense_model_is_not_moe(tmp_path: Path, tokenizer_dir: Path) -> None:
    from transformers import LlamaConfig, LlamaForCausalLM

    from moee_pipeline.models.routers import NotMoEError

    config = LlamaConfig(
        vocab_size=600, hidden_size=32, intermediate_size=64, num_hidden_layers=1,
        num_attention_heads=2, num_key_value_heads=2,
    )  # fmt: skip
    LlamaForCausalLM(config).save_pretrained(tmp_path)
    (tmp_path / "tokenizer.json").write_bytes((tokenizer_dir / "tokenizer.json").read_bytes())
    with pytest.raises(NotMoEError, match="not a Mixture-of-Experts model"):
        load_model(ModelSpec(str(tmp_path)))


def test_complete_entry_with_other_settings_is_refused(
    olmoe: tuple[Path, LoadedModel], tmp_path: Path
) -> None:
    model_dir, loaded = olmoe
    run(loaded, model_dir, tmp_path)
    with pytest.raises(ExtractionError, match="other settings"):
        run(loaded, model_dir, tmp_path, max_length=32)
    from moee_pipeline.extract.collect import _already_done
    from moee_pipeline.extract.jobs import EntryJob

    spec = ModelSpec(str(model_dir), dtype="bfloat16")
    with pytest.raises(ExtractionError, match="dtype"):
        _already_done(
            spec,
            options=options(tmp_path),
            task="T",
            jobs=lambda: [EntryJob(resolve_prompt("prompteol"))],
            texts=lambda: TEXTS,
        )


def test_empty_task_is_an_error(olmoe: tuple[Path, LoadedModel], tmp_path: Path) -> None:
    model_dir, loaded = olmoe
    with pytest.raises(ExtractionError, match="no texts"):
        run(loaded, model_dir, tmp_path, texts=[])


def test_overwriting_one_shard_keeps_the_other(
    olmoe: tuple[Path, LoadedModel], tmp_path: Path
) -> None:
    model_dir, loaded = olmoe
    run(loaded, model_dir, tmp_path, shard=(0, 2))
    b = run(loaded, model_dir, tmp_path, shard=(1, 2))
    others = sorted(p.name for p in b.path.glob("part-0of2-*.parquet"))
    assert others and store.read_manifest(b.path) is not None
    again = run(loaded, model_dir, tmp_path, shard=(1, 2), overwrite=True)
    assert sorted(p.name for p in b.path.glob("part-0of2-*.parquet")) == others
    assert (b.path / "_manifest.0of2.json").is_file()
    assert again.new_rows == b.rows and store.read_manifest(b.path) is not None
    assert len(read(tmp_path, model_dir).text_ids) == len(TEXTS)


def test_same_folder_name_other_model_is_refused(
    olmoe: tuple[Path, LoadedModel], tmp_path: Path
) -> None:
    """Local models are cached under their folder's name; a namesake is not reused silently."""
    import shutil

    model_dir, loaded = olmoe
    run(loaded, model_dir, tmp_path / "cache")
    namesake = tmp_path / "elsewhere" / model_dir.name
    shutil.copytree(model_dir, namesake)
    with pytest.raises(ExtractionError, match="'model'"):
        run(loaded, namesake, tmp_path / "cache")
    relative = Path(os.path.relpath(model_dir))  # the same folder by another path is fine
    assert run(loaded, relative, tmp_path / "cache").skipped
