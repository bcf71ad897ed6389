"""`moee score --hs-layers`: every method's STS score recomputed with NumPy from the cached
columns (Spearman of cosine similarities against the gold scores, as mteb's cosine_spearman)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
from scipy.stats import spearmanr

from moee_pipeline.cache import parts, store
from moee_pipeline.cache.errors import CacheError
from moee_pipeline.score.combine import CombineError, parse_hs_layers
from moee_pipeline.score.config import ScoreConfig
from moee_pipeline.score.run import run_score
from moee_pipeline.score.sweep import combinations, feature_columns
from tests.support.scores import read_scores
from tests.support.synthetic import (
    MODEL,
    NL,
    PROMPT,
    H,
    record_split_texts,
    write_synthetic_task,
)

TASK = "MoeeToySTS"
W = 0.5


@pytest.fixture(scope="module")
def cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from moee_pipeline.tasks import load_task, task_texts

    root = tmp_path_factory.mktemp("hs-layers") / "cache"
    write_synthetic_task(root, TASK, task_texts(load_task(TASK)), hs_layers=True)
    record_split_texts(root, TASK)
    return root


def _config(cache: Path, out: Path, **kw: Any) -> ScoreConfig:
    return ScoreConfig(
        model=MODEL, cache_dir=cache, output=out, progress=False, tasks=(TASK,), **kw
    )


def _z(x: np.ndarray) -> np.ndarray:
    return (x - x.mean(0)) / (x.std(0) + 1e-8)


def _unit(x: np.ndarray) -> np.ndarray:
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def _hs(feats: store.Features, spec: str, pooling: str) -> np.ndarray:
    """The HS an --hs-layers choice means, from the columns: each chosen layer's block, scaled
    to unit RMS row norm when there are several, in layer order."""
    if spec == "last":
        return feats.arrays[f"hs_{pooling}"].astype(np.float64)
    cube = feats.arrays[f"hs_layers_{pooling}"].astype(np.float64).reshape(-1, NL, H)
    chosen = {"all": list(range(NL)), "0": [0], "1-2": [1, 2], "0,3": [0, 3]}[spec]
    blocks = [cube[:, i] for i in chosen]
    if len(blocks) > 1:
        blocks = [b / np.sqrt((b**2).sum(1).mean()) for b in blocks]
    return np.hstack(blocks)


@pytest.mark.parametrize("pooling", ["last", "mean"])
def test_every_method_under_every_hs_choice_equals_numpy(
    cache: Path, tmp_path: Path, pooling: str
) -> None:
    from moee_pipeline.tasks import load_task

    specs = ("last", "all", "0", "1-2", "0,3")
    rows = run_score(_config(cache, tmp_path, hs_layers=specs, weights=(W,), pooling=(pooling,)))
    got: dict[tuple[str, str], float] = {
        (r.combo.method, r.combo.hs_layers): r.score.main_score for r in rows
    }
    assert len(got) == 3 * len(specs) + 1  # RW once: it reads no HS
    columns = (*parts.VECTOR_COLUMNS, *parts.HS_LAYER_COLUMNS)
    feats = store.read_features(cache, model=MODEL, prompt_id=PROMPT, task=TASK, columns=columns)
    row = {t: i for i, t in enumerate(feats.text_ids)}
    ds = load_task(TASK).dataset["test"]  # type: ignore[index]
    a = [row[parts.text_id(t)] for t in ds["sentence1"]]
    b = [row[parts.text_id(t)] for t in ds["sentence2"]]
    rw = _z(feats.arrays[f"rw_{pooling}"].astype(np.float64))

    def cos(x: np.ndarray) -> np.ndarray:
        return (_unit(x[a]) * _unit(x[b])).sum(1)

    for spec in specs:
        hs = _hs(feats, spec, pooling)
        expected = {
            "HS": cos(hs),
            "MoEE-concat": cos(np.hstack([_z(hs), rw])),
            "MoEE-sum": cos(_z(hs)) + W * cos(rw),
        }
        for method, sim in expected.items():
            want = spearmanr(sim, ds["score"]).statistic
            assert got[(method, parse_hs_layers(spec))] == pytest.approx(want, abs=1e-6), (
                method,
                spec,
            )
    written = read_scores(tmp_path / "scores.csv")
    assert {r["hs_layers"] for r in written if r["method"] != "RW"} == {
        "last", "all", "0", "1-2", "0,3",
    }  # fmt: skip
    names = [p.name for p in (tmp_path / "mteb").rglob("experiments/*")]
    assert len(names) == len(got)  # one mteb experiment per configuration
    for spec in specs[1:]:  # `last` names no HS layers: experiments of earlier runs stay
        assert any(f"__hs_layers_{parse_hs_layers(spec)}__" in n for n in names), spec


def test_the_last_layer_alone_scores_as_last(cache: Path, tmp_path: Path) -> None:
    rows = run_score(_config(cache, tmp_path, hs_layers=("last", str(NL - 1)), methods=("HS",)))
    scores = {r.combo.hs_layers: r.score.main_score for r in rows}
    assert scores["last"] == pytest.approx(scores[str(NL - 1)], abs=1e-9)


def test_choices_are_parsed_and_checked(cache: Path, tmp_path: Path) -> None:
    assert [parse_hs_layers(s) for s in ("last", "ALL", "2,0-1", "3")] == [
        "last",
        "all",
        "0-2",
        "3",
    ]
    with pytest.raises(CombineError, match="bad --hs-layers 'x'"):
        parse_hs_layers("x")
    config = _config(cache, tmp_path, hs_layers=("all", "last"), methods=("HS", "RW"))
    combos = combinations(config)
    assert sorted((c.method, c.hs_layers) for c in combos) == [
        ("HS", "all"),
        ("HS", "last"),
        ("RW", "last"),
    ]
    assert feature_columns(combos) == ["hs_last", "hs_layers_last", "rw_last"]
    with pytest.raises(CombineError, match="out of range; this model has 4 decoder layers"):
        run_score(_config(cache, tmp_path, hs_layers=("2-7",), methods=("HS",)))


def test_a_cache_of_the_last_layer_only_says_what_to_extract(tmp_path: Path) -> None:
    from moee_pipeline.tasks import load_task, task_texts

    root = tmp_path / "cache"
    write_synthetic_task(root, TASK, task_texts(load_task(TASK)))
    record_split_texts(root, TASK)
    with pytest.raises(CacheError, match="--hs-layers all --extend"):
        run_score(_config(root, tmp_path / "out", hs_layers=("all",), methods=("HS",)))
