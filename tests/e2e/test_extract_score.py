"""Extract with a tiny random MoE model, then score the cache: all task types, offline copies."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
from scipy.stats import spearmanr

from moee_pipeline.cache import parts, store
from moee_pipeline.testing.toy import TOY_TASKS
from moee_pipeline.vocabulary import PAPER_AVERAGE_LABEL
from tests.support.cli import cli_ok
from tests.support.scores import read_scores


@pytest.mark.slow
def test_extract_then_score_all_toy_task_types(
    tiny_model: Callable[[str], Path], tmp_path: Path
) -> None:
    model = str(tiny_model("olmoe"))
    cache, out = tmp_path / "cache", tmp_path / "results"
    cli_ok("extract", "--model", model, "--tasks", ",".join(TOY_TASKS), "--cache-dir", str(cache))
    table = cli_ok(
        "score", "--model", model, "--cache-dir", str(cache), "--output", str(out),
        "--weight", "0.5", "--weight", "2", "--rw", "softmax", "--layers", "0-1",
    )  # fmt: skip
    rows = read_scores(out / "scores.csv")
    assert len(rows) == len(TOY_TASKS) * 5  # HS, RW, concat, sum x 2 weights
    assert {r["task_type"] for r in rows} == {
        "STS", "Classification", "Clustering", "PairClassification", "Reranking", "Summarization"
    }  # fmt: skip
    assert all(np.isfinite(float(r["main_score"])) for r in rows)
    assert {r["layers"] for r in rows if r["method"] != "HS"} == {"0-1"}
    assert PAPER_AVERAGE_LABEL in table


@pytest.mark.slow
@pytest.mark.integration
def test_copied_cache_scores_real_sts_offline_without_data_dir(
    tiny_model: Callable[[str], Path],
    mteb_data: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    model = str(tiny_model("olmoe"))
    first = tmp_path / "gpu-box"
    cli_ok("extract", "--model", model, "--tasks", "BIOSSES", "--data-dir", str(mteb_data),
           "--cache-dir", str(first), "--prompt", "prompteol")  # fmt: skip
    laptop = tmp_path / "laptop-cache"
    shutil.copytree(first, laptop)
    shutil.rmtree(first)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")
    out = tmp_path / "results"
    cli_ok("score", "--model", model, "--prompt", "prompteol", "--cache-dir", str(laptop),
           "--output", str(out), "--method", "HS", "--method", "RW")  # fmt: skip
    got = {r["method"]: float(r["main_score"]) for r in read_scores(out / "scores.csv")}
    assert set(got) == {"HS", "RW"}

    # independent check: cosine-Spearman of HS and z-scored RW from the Parquet files
    feats = store.read_features(
        laptop, model=model, prompt_id="prompteol", task="BIOSSES", columns=("hs_last", "rw_last")
    )
    row = {t: i for i, t in enumerate(feats.text_ids)}
    gold = pq.read_table(mteb_data / "BIOSSES" / "test.parquet").to_pydict()
    a = [row[parts.text_id(t)] for t in gold["sentence1"]]
    b = [row[parts.text_id(t)] for t in gold["sentence2"]]
    rw = feats.arrays["rw_last"].astype(np.float64)
    for method, x in {
        "HS": feats.arrays["hs_last"].astype(np.float64),
        "RW": (rw - rw.mean(0)) / (rw.std(0) + 1e-8),
    }.items():
        u = x / np.linalg.norm(x, axis=1, keepdims=True)
        expected = spearmanr((u[a] * u[b]).sum(1), gold["score"]).statistic
        assert got[method] == pytest.approx(expected, abs=1e-6), method
