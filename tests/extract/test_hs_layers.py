"""`--hs-layers all`: every decoder layer's hidden state, against transformers' own
`output_hidden_states`, and extending an entry extracted with `last`."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import torch

from moee_pipeline.cache import parts, store
from moee_pipeline.extract import pipeline
from moee_pipeline.extract.batching import encode_texts
from moee_pipeline.extract.pipeline import extract_task
from moee_pipeline.extract.settings import ExtractionError, ExtractOptions, TaskSummary
from moee_pipeline.models import deepseek
from moee_pipeline.models.loading import LoadedModel, ModelSpec, load_model
from moee_pipeline.prompts import resolve_prompt
from tests.models.test_deepseek import TINY as DEEPSEEK_TINY

TEXTS = [
    "The cat sat on the mat",
    "A man is playing a guitar on the stage tonight.",
    "short",
    'He said "hello" to me',
    "Two dogs run across a green field",
]
PROMPTS = ("none", "prompteol")
LAYER_COLUMNS = (*parts.VECTOR_COLUMNS, *parts.HS_LAYER_COLUMNS)


def _options(cache: Path, **overrides: Any) -> ExtractOptions:
    base: dict[str, Any] = {
        "cache_dir": cache,
        "batch_size": 3,
        "max_length": 48,
        "rows_per_shard": 2,
        "progress": False,
        "store_dtype": "float32",  # compared with transformers' outputs: stored exactly
    }
    return ExtractOptions(**{**base, **overrides})


def _extract(
    loaded: LoadedModel, model_dir: Path, cache: Path, prompt: str = "none", **overrides: Any
) -> TaskSummary:
    texts = overrides.pop("texts", TEXTS)
    return extract_task(
        loaded,
        task="T",
        texts=texts,
        prompt=resolve_prompt(prompt),
        options=_options(cache, **overrides),
        model_id=str(model_dir),
    )


def _read(cache: Path, model_dir: Path, prompt: str = "none", **kw: Any) -> store.Features:
    columns = kw.pop("columns", LAYER_COLUMNS)
    return store.read_features(
        cache, model=str(model_dir), prompt_id=prompt, task="T", columns=columns, **kw
    )


@pytest.fixture(scope="module")
def deepseek_dir(tmp_path_factory: pytest.TempPathFactory, tokenizer_dir: Path) -> Iterator[Path]:
    """A tiny DeepSeekMoE checkpoint, loaded through the native Qwen2-MoE mapping."""
    from transformers import PreTrainedTokenizerFast

    tokenizer = PreTrainedTokenizerFast.from_pretrained(tokenizer_dir)
    folder = tmp_path_factory.mktemp("deepseek-hs")
    config = deepseek.deepseek_config(vocab_size=len(tokenizer), **DEEPSEEK_TINY)
    deepseek.write_random_checkpoint(folder, config, seed=5)
    tokenizer.save_pretrained(folder)
    yield folder


@pytest.fixture(scope="module")
def olmoe(tiny_model: Callable[[str], Path]) -> tuple[Path, LoadedModel]:
    path = tiny_model("olmoe")
    return path, load_model(ModelSpec(str(path)))


@pytest.mark.parametrize("kind", ["olmoe", "qwen2_moe", "deepseek"])
def test_every_layer_equals_output_hidden_states(
    kind: str, tiny_model: Callable[[str], Path], deepseek_dir: Path, tmp_path: Path
) -> None:
    """hs_layers_* = transformers' hidden_states[1..n_layers] (last token / mean over real
    tokens), computed text by text without padding; their last block is hs_last/hs_mean."""
    model_dir = deepseek_dir if kind == "deepseek" else tiny_model(kind)
    loaded = load_model(ModelSpec(str(model_dir), dtype="float32"))
    n_layers, hidden = int(loaded.model.config.num_hidden_layers), loaded.hidden_size
    if kind == "deepseek":
        assert loaded.moe_layers[0] == 1  # layer 0 is dense: its state is stored all the same
    worst = 0.0
    for prompt in PROMPTS:
        _extract(loaded, model_dir, tmp_path, prompt, hs_layers="all")
        features = _read(tmp_path, model_dir, prompt)
        assert features.manifest["hs_columns"] == list(LAYER_COLUMNS[2:])
        assert features.manifest["n_layers"] == n_layers
        row = {tid: i for i, tid in enumerate(features.text_ids)}
        encoded = encode_texts(loaded.tokenizer, resolve_prompt(prompt), TEXTS, max_length=48)
        for item in encoded:
            with torch.no_grad():
                out = loaded.model(
                    input_ids=torch.tensor([item.input_ids]), output_hidden_states=True
                )
            states = torch.stack(out.hidden_states[1:])[:, 0].numpy()  # (layers, tokens, hidden)
            assert states.shape[0] == n_layers
            i = row[parts.text_id(TEXTS[item.index])]
            got_last = features.arrays["hs_layers_last"][i].reshape(n_layers, hidden)
            got_mean = features.arrays["hs_layers_mean"][i].reshape(n_layers, hidden)
            worst = max(
                worst,
                float(np.abs(got_last - states[:, -1]).max()),
                float(np.abs(got_mean - states.mean(axis=1)).max()),
            )
            assert np.array_equal(got_last[-1], features.arrays["hs_last"][i])
            assert np.array_equal(got_mean[-1], features.arrays["hs_mean"][i])
    assert worst < 1e-5


def test_last_is_todays_cache(olmoe: tuple[Path, LoadedModel], tmp_path: Path) -> None:
    model_dir, loaded = olmoe
    summary = _extract(loaded, model_dir, tmp_path)
    schema = pd.read_parquet(summary.path).columns
    assert not set(parts.HS_LAYER_COLUMNS) & set(schema)
    manifest = store.read_manifest(summary.path)
    assert manifest is not None and manifest["hs_columns"] == ["hs_last", "hs_mean"]
    with pytest.raises(store.CacheError, match="--hs-layers all --extend"):
        _read(tmp_path, model_dir)
    # beside an entry of every layer, the README's pandas reads still work
    every = extract_task(
        loaded, task="U", texts=TEXTS[:2], prompt=resolve_prompt("none"),
        options=_options(tmp_path, hs_layers="all"), model_id=str(model_dir),
    )  # fmt: skip
    common = ["text_id", "rw_last", "hs_last", "task"]
    both = pd.read_parquet(tmp_path / "features", columns=common)
    assert sorted(both["task"].value_counts().to_dict().items()) == [("T", 5), ("U", 2)]
    one = pd.read_parquet(every.path)
    assert set(parts.HS_LAYER_COLUMNS) <= set(one.columns) and len(one) == 2


def test_mismatch_is_one_line_and_extend_keeps_every_row(
    olmoe: tuple[Path, LoadedModel], tmp_path: Path
) -> None:
    model_dir, loaded = olmoe
    first = _extract(loaded, model_dir, tmp_path, texts=TEXTS[:3])
    before = _read(tmp_path, model_dir, columns=parts.VECTOR_COLUMNS)
    with pytest.raises(ExtractionError, match="rerun with --extend") as refused:
        _extract(loaded, model_dir, tmp_path, hs_layers="all")
    assert "\n" not in str(refused.value)
    assert _read(tmp_path, model_dir, columns=parts.VECTOR_COLUMNS).text_ids == before.text_ids
    with pytest.raises(ExtractionError, match="--hs-layers all"):
        ExtractOptions(extend=True)

    extended = _extract(loaded, model_dir, tmp_path, hs_layers="all", extend=True)
    assert extended.path == first.path and extended.rows == len(TEXTS)
    after = _read(tmp_path, model_dir)
    assert len(after.text_ids) == len(set(after.text_ids)) == len(TEXTS)
    rows = {tid: i for i, tid in enumerate(after.text_ids)}
    for i, tid in enumerate(before.text_ids):  # every stored value, bit for bit
        for name in parts.VECTOR_COLUMNS:
            assert np.array_equal(after.arrays[name][rows[tid]], before.arrays[name][i])
    # the extension's new columns equal a fresh `all` extraction of the same texts
    fresh = tmp_path / "fresh"
    _extract(loaded, model_dir, fresh, hs_layers="all")
    other = _read(fresh, model_dir)
    again = {tid: i for i, tid in enumerate(other.text_ids)}
    for name in parts.HS_LAYER_COLUMNS:
        got = after.arrays[name][[rows[t] for t in other.text_ids]]
        np.testing.assert_allclose(
            got, other.arrays[name][[again[t] for t in other.text_ids]], atol=1e-5
        )
    # an entry holding every layer serves `last` runs, but texts added need every column
    assert _extract(loaded, model_dir, tmp_path).skipped
    with pytest.raises(ExtractionError, match="with --hs-layers all"):
        _extract(loaded, model_dir, tmp_path, texts=[*TEXTS, "one more text"])


def test_a_failed_extension_leaves_the_entry_as_it_was(
    olmoe: tuple[Path, LoadedModel], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A run stopped midway (after it wrote parts of the extension) loses nothing and leaves
    no second copy of any row; rerunning it completes the extension."""
    model_dir, loaded = olmoe
    summary = _extract(loaded, model_dir, tmp_path)
    before = _read(tmp_path, model_dir, columns=parts.VECTOR_COLUMNS)
    files_before = sorted(p.name for p in summary.path.iterdir())
    calls = {"n": 0}
    real = pipeline.keep_stored

    def stop_after_two(*args: Any) -> Any:
        calls["n"] += 1
        if calls["n"] > 2:  # 2 batches of 3 rows: at least one part of 2 rows written
            raise KeyboardInterrupt
        return real(*args)

    monkeypatch.setattr(pipeline, "keep_stored", stop_after_two)
    with pytest.raises(KeyboardInterrupt):
        _extract(loaded, model_dir, tmp_path, hs_layers="all", extend=True, batch_size=2)
    monkeypatch.undo()
    assert sorted(p.name for p in summary.path.iterdir()) == files_before
    kept = _read(tmp_path, model_dir, columns=parts.VECTOR_COLUMNS)
    assert kept.text_ids == before.text_ids
    for name in parts.VECTOR_COLUMNS:
        assert np.array_equal(kept.arrays[name], before.arrays[name])
    _extract(loaded, model_dir, tmp_path, hs_layers="all", extend=True)
    assert sorted(_read(tmp_path, model_dir).text_ids) == sorted(before.text_ids)


def test_which_hs_mismatches_extend_and_which_are_refused(tmp_path: Path) -> None:
    from moee_pipeline.extract.reuse import check_hs_room, extends_hs

    last = {"hs_columns": ["hs_last", "hs_mean"]}
    every = {"hs_columns": ["hs_last", "hs_mean", *parts.HS_LAYER_COLUMNS]}
    before: dict[str, Any] = {}  # a manifest from before HS columns were recorded
    run_all, run_last = _options(tmp_path, hs_layers="all"), _options(tmp_path)
    extend = _options(tmp_path, hs_layers="all", extend=True)
    assert not extends_hs(every, run_last, where=tmp_path, complete=True)
    assert not extends_hs(last, run_last, where=tmp_path, complete=True)
    assert extends_hs(before, extend, where=tmp_path, complete=True)
    with pytest.raises(ExtractionError, match="rerun with --extend"):
        extends_hs(last, run_all, where=tmp_path, complete=True)
    with pytest.raises(ExtractionError, match="partly extracted with --hs-layers last"):
        extends_hs(last, extend, where=tmp_path, complete=False)
    sharded = _options(tmp_path, hs_layers="all", extend=True, shard=(0, 2))
    with pytest.raises(ExtractionError, match="without --shard"):
        extends_hs(last, sharded, where=tmp_path, complete=True)
    check_hs_room(every, run_all, where=tmp_path)
    with pytest.raises(ExtractionError, match="add texts to it with --hs-layers all"):
        check_hs_room(every, run_last, where=tmp_path)
