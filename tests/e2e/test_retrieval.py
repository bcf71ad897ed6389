"""Retrieval end to end on the real SciFact data with a tiny random model: extract -> score ->
report, the four methods, and the HS score equal to nDCG@10 computed from the cached vectors.

The full corpus (5,183 documents, 5,483 texts) takes about 2 minutes to extract through the tiny
model on 2 busy cores, so the default test uses a fixed seeded subset of the corpus that keeps
every document a qrels row names (plus 200 others); the full run is marked slow.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest

from moee_pipeline.cache import parts, store
from moee_pipeline.tasks.pairs import document_texts
from moee_pipeline.vocabulary import METHODS
from tests.support.cli import cli_ok
from tests.support.data import retrieval_subset
from tests.support.ndcg import ndcg_at_10
from tests.support.scores import read_scores


def _extract_score_report(
    model: str, data: Path, tmp_path: Path, *extract: str
) -> tuple[list[dict], str]:
    cache, out = tmp_path / "cache", tmp_path / "results"
    done = cli_ok("extract", "--model", model, "--tasks", "SciFact", "--data-dir", str(data),
                  "--cache-dir", str(cache), *extract)  # fmt: skip
    assert "SciFact" in done
    if extract:
        assert "cut to --max-length" in done  # long documents cut, the template kept
    cli_ok("score", "--model", model, "--cache-dir", str(cache), "--output", str(out),
           "--weight", "1", "--weight", "auto")  # fmt: skip
    rows = read_scores(out / "scores.csv")
    report = cli_ok("report", "--results", str(out))
    _check_hs_is_numpy_ndcg(rows, cache=cache, model=model, data=data)
    return rows, report


def _check_hs_is_numpy_ndcg(rows: list[dict], *, cache: Path, model: str, data: Path) -> None:
    """HS (not z-scored under --zscore auto) from the cache equals the brute-force nDCG@10."""
    feats = store.read_features(
        cache, model=model, prompt_id="none", task="SciFact", columns=("hs_last",)
    )
    row = {t: i for i, t in enumerate(feats.text_ids)}
    hs = feats.arrays["hs_last"]
    corpus = pq.read_table(data / "SciFact" / "corpus" / "test.parquet").to_pydict()
    queries = pq.read_table(data / "SciFact" / "queries" / "test.parquet").to_pydict()
    qrels = pq.read_table(data / "SciFact" / "qrels" / "test.parquet").to_pydict()
    relevant: dict[str, dict[str, int]] = {}
    for q, d, s in zip(qrels["query-id"], qrels["corpus-id"], qrels["score"], strict=True):
        relevant.setdefault(q, {})[d] = s
    from datasets import Dataset

    docs = document_texts(Dataset.from_dict(corpus))
    expected = ndcg_at_10(
        dict(zip(queries["id"], queries["text"], strict=True)),
        dict(zip(corpus["id"], docs, strict=True)),
        relevant,
        lambda texts: hs[[row[parts.text_id(t)] for t in texts]],
    )
    (got,) = [float(r["main_score"]) for r in rows if r["method"] == "HS"]
    assert got == pytest.approx(expected, abs=1e-5)


def _check_rows(rows: list[dict], report: str, out: Path) -> None:
    assert {r["method"] for r in rows} == set(METHODS)
    assert len(rows) == 5  # HS, RW, concat, sum at w=1 and at the auto weight
    assert {(r["task"], r["task_type"], r["main_metric"]) for r in rows} == {
        ("SciFact", "Retrieval", "ndcg_at_10")
    }
    assert all(0 <= float(r["main_score"]) <= 1 for r in rows)
    assert {r["weight_rule"] for r in rows if r["method"] == "MoEE-sum"} == {"fixed", "auto"}
    results = list((out / "mteb").rglob("SciFact.json"))
    assert len(results) == 5  # mteb's own results folder, one per configuration
    saved = json.loads(results[0].read_text())
    assert saved["scores"]["test"][0]["main_score"] == pytest.approx(
        saved["scores"]["test"][0]["ndcg_at_10"]
    )
    assert "Retrieval" in report and "Average is the paper's" in report


@pytest.mark.slow
@pytest.mark.integration
def test_scifact_subset_extract_score_report(
    tiny_model: Callable[[str], Path], mteb_data: Path, tmp_path: Path
) -> None:
    data = retrieval_subset(mteb_data, "SciFact", tmp_path / "data", others=200)
    rows, report = _extract_score_report(str(tiny_model("olmoe")), data, tmp_path)
    _check_rows(rows, report, tmp_path / "results")
    n_docs = pq.read_metadata(data / "SciFact" / "corpus" / "test.parquet").num_rows
    assert n_docs < 600  # the subset, not the corpus
    assert np.isfinite([float(r["main_score"]) for r in rows]).all()


@pytest.mark.slow
@pytest.mark.integration
def test_scifact_full_corpus_extract_score_report(
    tiny_model: Callable[[str], Path], mteb_data: Path, tmp_path: Path
) -> None:
    """Every one of the 5,183 documents, cut at 128 tokens: the corpus at its real size through
    extraction, scoring and the report (the subset test above reads them whole)."""
    model = str(tiny_model("olmoe"))
    rows, report = _extract_score_report(model, mteb_data, tmp_path, "--max-length", "128")
    _check_rows(rows, report, tmp_path / "results")
