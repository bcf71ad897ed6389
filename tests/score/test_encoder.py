"""The cache-backed mteb encoder and one-task evaluation."""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest
from mteb.abstasks import AbsTask
from mteb.models.models_protocols import EncoderProtocol

from moee_pipeline.cache.parts import text_id
from moee_pipeline.score.encoder import (
    CachedEncoder,
    MissingTextsError,
    TaskScore,
    evaluate_split,
    row_index,
)
from moee_pipeline.score.results import save_split_result
from tests.support.data import first_rows
from tests.support.paths import SHARED

TEXTS = ["alpha", "beta", "gamma", "delta"]
META = SimpleNamespace(name="SomeTask")


def _encoder(texts: list[str] = TEXTS, dim: int = 3) -> tuple[CachedEncoder, np.ndarray]:
    emb = np.arange(len(texts) * dim, dtype=np.float32).reshape(len(texts), dim)
    return CachedEncoder(index=row_index([text_id(t) for t in texts]), embeddings=emb), emb


def test_encoder_satisfies_mteb_protocol() -> None:
    encoder, _ = _encoder()
    assert isinstance(encoder, EncoderProtocol)
    meta = encoder.mteb_model_meta
    assert meta.embed_dim == 3 and meta.name == "moee/cached"


def test_encode_gathers_rows_in_dataloader_order() -> None:
    encoder, emb = _encoder()
    batches = [{"text": ["gamma", "alpha"]}, {"text": ["gamma", "delta", "beta"]}]
    out = encoder.encode(batches, task_metadata=META, hf_split="test", hf_subset="default")
    np.testing.assert_array_equal(out, emb[[2, 0, 2, 3, 1]])
    assert out.dtype == np.float32


def test_missing_texts_raise_with_task_and_count() -> None:
    encoder, _ = _encoder()
    batches = [{"text": ["alpha", "nope", "also missing"]}]
    with pytest.raises(MissingTextsError, match=r"SomeTask: 2 of 3 texts"):
        encoder.encode(batches, task_metadata=META, hf_split="test", hf_subset="default")


def test_row_index_keeps_first_duplicate() -> None:
    assert row_index(["a", "b", "a"]) == {"a": 0, "b": 1}


def _evaluate(
    task: AbsTask, encoder: CachedEncoder, output: Path | None = None
) -> tuple[TaskScore, Path]:
    """The test split scored as `moee score` scores it; saved in mteb's results folder if asked."""
    score, result = evaluate_split(task, encoder=encoder, split="test")
    path = Path() if output is None else save_split_result(output, encoder.mteb_model_meta, result)
    return score, path


def _toy(name: str) -> tuple[AbsTask, CachedEncoder]:
    from moee_pipeline.tasks import load_task, task_texts

    task = load_task(name)
    texts = task_texts(task)
    rng = np.random.default_rng(3)
    emb = rng.standard_normal((len(texts), 8)).astype(np.float32)
    return task, CachedEncoder(index=row_index([text_id(t) for t in texts]), embeddings=emb)


@pytest.mark.parametrize(
    ("name", "metric"),
    [("MoeeToySTS", "cosine_spearman"), ("MoeeToyReranking", "map_at_1000")],
)
def test_evaluation_writes_json_only_under_output(
    name: str, metric: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    home = tmp_path / "home"
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("MTEB_CACHE", str(home / "mteb-cache"))
    task, encoder = _toy(name)
    out = tmp_path / "out" / "HS"
    result, path = _evaluate(task, encoder, out)
    assert result.task == name and result.main_metric == metric and result.split == "test"
    assert -1 <= result.main_score <= 1
    assert path.name == f"{name}.json" and path.is_relative_to(out)
    saved = json.loads(path.read_text())
    assert saved["scores"]["test"][0]["main_score"] == pytest.approx(result.main_score)
    assert not home.exists()  # nothing under ~/.cache


def test_repeated_evaluation_is_identical() -> None:
    """Each evaluation gets a fresh RNG view, so k-means and sampling repeat exactly."""
    task, encoder = _toy("MoeeToyClustering")
    first = _evaluate(task, encoder)[0].main_score
    assert _evaluate(task, encoder)[0].main_score == first


def test_missing_text_inside_mteb_propagates() -> None:
    from moee_pipeline.tasks import load_task, task_texts

    task = load_task("MoeeToySTS")
    texts = task_texts(task)[1:]
    emb = np.ones((len(texts), 4), np.float32)
    encoder = CachedEncoder(
        index=row_index([text_id(t) for t in texts]), embeddings=emb, hint="run extract"
    )
    with pytest.raises(MissingTextsError, match=r"MoeeToySTS: 1 of \d+ texts.*run extract"):
        _evaluate(task, encoder)


def _plain_mteb_scores(task: AbsTask, encoder: CachedEncoder) -> Mapping[str, Any]:
    """mteb's evaluation of an untouched copy of the task: the reference for our fast path."""
    import copy

    import mteb

    plain = copy.copy(task)
    plain.rng_state = copy.deepcopy(task.rng_state)
    plain.np_rng = copy.deepcopy(task.np_rng)
    result = mteb.evaluate(encoder, plain, cache=None, co2_tracker=False, show_progress_bar=False)
    return result.task_results[0].scores["test"][0]


@pytest.mark.parametrize("name", ["MoeeToyClassification", "EmotionClassification"])
def test_classification_fast_labels_give_mteb_scores(name: str, tmp_path: Path) -> None:
    from moee_pipeline.tasks import load_task, task_texts

    data = SHARED / "mteb-data"
    if name != "MoeeToyClassification" and not data.is_dir():
        pytest.skip("../shared/mteb-data is not present")
    if name != "MoeeToyClassification":
        # its first 500 rows per split (of 16,000 train, 2,000 test): the reference, mteb's own
        # path, reads labels row by row in each of its ten experiments (a minute in all), and
        # what is tested is equality with it, not the size; every label keeps 8+ train rows
        data = first_rows(data, name, tmp_path / "data", rows=500)
    task = load_task(name, data_dir=data)
    texts = task_texts(task)
    rng = np.random.default_rng(0)
    encoder = CachedEncoder(
        index=row_index([text_id(t) for t in texts]),
        embeddings=rng.standard_normal((len(texts), 32)).astype(np.float32),
    )
    ours, path = _evaluate(task, encoder, tmp_path)
    reference = _plain_mteb_scores(task, encoder)
    assert ours.main_score == pytest.approx(reference["main_score"], abs=0)
    written = json.loads(path.read_text())
    experiments = written["scores"]["test"][0]["scores_per_experiment"]
    expected = reference["scores_per_experiment"]
    for key in ("accuracy", "f1", "precision_weighted"):  # the JSON keeps 6 decimals
        got = [e[key] for e in experiments]
        assert got == pytest.approx([e[key] for e in expected], abs=5e-7)
