"""`moee score` on synthetic feature caches of the six toy tasks, checked independently."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from types import MappingProxyType
from typing import Any

import numpy as np
import pytest
from click.testing import CliRunner
from scipy.stats import spearmanr
from sklearn.metrics import average_precision_score

from moee_pipeline.cache import layout, parts, store
from moee_pipeline.cache.scores import SCORE_COLUMNS
from moee_pipeline.cli import main
from moee_pipeline.score.config import ScoreConfig, ScoreError
from moee_pipeline.score.encoder import MissingTextsError
from moee_pipeline.score.run import run_score
from moee_pipeline.score.summary import format_table
from moee_pipeline.score.sweep import combinations
from moee_pipeline.testing.toy import TOY_TASKS
from moee_pipeline.vocabulary import PAPER_AVERAGE_LABEL, Method
from tests.support.auto_weight import brute_force
from tests.support.scores import read_scores
from tests.support.synthetic import (
    MODEL,
    PROMPT,
    E,
    L,
    record_split_texts,
    write_synthetic_task,
)

ToyTexts = Mapping[str, tuple[str, ...]]


@pytest.fixture(scope="session")
def toy_texts() -> ToyTexts:
    """The texts each toy task's evaluation encodes, recorded once; frozen, as tests share them."""
    from moee_pipeline.tasks import load_task, task_texts

    return MappingProxyType({name: tuple(task_texts(load_task(name))) for name in TOY_TASKS})


@pytest.fixture
def cache(tmp_path: Path, toy_texts: ToyTexts) -> Path:
    root = tmp_path / "cache"
    for name, texts in toy_texts.items():
        write_synthetic_task(root, name, texts)
        record_split_texts(root, name)
    return root


def _config(cache: Path, out: Path, **kw: Any) -> ScoreConfig:
    return ScoreConfig(model=MODEL, cache_dir=cache, output=out, progress=False, **kw)


def _z(x: np.ndarray) -> np.ndarray:
    x = x.astype(np.float64)
    return (x - x.mean(0)) / (x.std(0) + 1e-8)


def _unit(x: np.ndarray) -> np.ndarray:
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def _pair_vectors(
    cache: Path, task_name: str, w: float
) -> tuple[dict[str, tuple[np.ndarray, ...]], Any]:
    """Independent per-method embeddings of the test pairs, straight from the Parquet files,
    with the task's test split."""
    from moee_pipeline.tasks import load_task

    feats = store.read_features(
        cache, model=MODEL, prompt_id=PROMPT, task=task_name, columns=("hs_last", "rw_last")
    )
    row = {t: i for i, t in enumerate(feats.text_ids)}
    hs, rw = feats.arrays["hs_last"].astype(np.float64), feats.arrays["rw_last"]
    task = load_task(task_name)
    assert task.dataset is not None
    ds = task.dataset["test"]
    a = np.array([row[parts.text_id(t)] for t in ds["sentence1"]])
    b = np.array([row[parts.text_id(t)] for t in ds["sentence2"]])
    methods = {
        "HS": hs,
        "RW": _z(rw),
        "MoEE-concat": np.hstack([_z(hs), _z(rw)]),
        "MoEE-sum": np.hstack([_unit(_z(hs)), np.sqrt(w) * _unit(_z(rw))]),
    }
    pairs: dict[str, tuple[np.ndarray, ...]] = {m: (x[a], x[b]) for m, x in methods.items()}
    pairs["z-parts"] = (_z(hs)[a], _z(hs)[b], _z(rw)[a], _z(rw)[b])
    return pairs, ds


def test_all_six_task_types_and_independent_sts_pairclf(cache: Path, tmp_path: Path) -> None:
    out = tmp_path / "results"
    w = 0.7
    rows = run_score(_config(cache, out, weights=(w,)))
    got: dict[tuple[str, str], float] = {
        (r.combo.method, r.score.task): r.score.main_score for r in rows
    }
    assert {r.score.task_type for r in rows} == {
        "STS", "Classification", "Clustering", "PairClassification", "Reranking", "Summarization"
    }  # fmt: skip
    assert all(np.isfinite(r.score.main_score) for r in rows)
    assert len(read_scores(out / "scores.csv")) == 4 * 6
    task_files = [f for f in (out / "mteb").rglob("*.json") if f.name != "model_meta.json"]
    assert len(task_files) == 4 * 6

    pairs, sts = _pair_vectors(cache, "MoeeToySTS", w)
    hs_a, hs_b, rw_a, rw_b = pairs.pop("z-parts")
    for method, (x, y) in pairs.items():
        if method == "MoEE-sum":  # the similarity the paper defines: cos_hs + w cos_rw
            sim = (_unit(hs_a) * _unit(hs_b)).sum(1) + w * (_unit(rw_a) * _unit(rw_b)).sum(1)
        else:
            sim = (_unit(x) * _unit(y)).sum(1)
        expected = spearmanr(sim, sts["score"]).statistic
        assert got[(method, "MoeeToySTS")] == pytest.approx(expected, abs=1e-6), method

    pairs, pc = _pair_vectors(cache, "MoeeToyPairClassification", w)
    pairs.pop("z-parts")
    labels = np.asarray(pc["labels"])
    for method, (x, y) in pairs.items():
        candidates = [
            (_unit(x) * _unit(y)).sum(1),
            (x * y).sum(1),
            -np.linalg.norm(x - y, axis=1),
            -np.abs(x - y).sum(1),
        ]
        expected = max(average_precision_score(labels, s) for s in candidates)
        assert got[(method, "MoeeToyPairClassification")] == pytest.approx(expected, abs=1e-6)

    table = format_table(rows)
    assert PAPER_AVERAGE_LABEL in table and "[Reranking] avg" in table
    assert "MoEE-sum(w=0.7)" in table


def test_sum_with_tiny_weight_ranks_like_zscored_hs(cache: Path, tmp_path: Path) -> None:
    config = _config(
        cache,
        tmp_path / "r",
        tasks=("MoeeToySTS", "MoeeToyReranking"),
        methods=("HS", "MoEE-sum"),
        weights=(1e-9,),
        zscore=("all",),
    )
    rows = run_score(config)
    by = {(r.combo.method, r.score.task): r.score.main_score for r in rows}
    for task in ("MoeeToySTS", "MoeeToyReranking"):
        assert by[("MoEE-sum", task)] == pytest.approx(by[("HS", task)], abs=1e-6)


def test_scores_csv_replaces_rows_on_rerun(cache: Path, tmp_path: Path) -> None:
    out = tmp_path / "r"
    base = {"tasks": ("MoeeToySTS",), "methods": ("RW", "MoEE-sum")}
    run_score(_config(cache, out, **base))
    first = read_scores(out / "scores.csv")
    assert list(first[0]) == list(SCORE_COLUMNS)
    run_score(_config(cache, out, **base))
    assert read_scores(out / "scores.csv") == first  # replaced, not duplicated
    run_score(_config(cache, out, **base, weights=(1.0, 2.0), rw=("softmax",)))
    rows = read_scores(out / "scores.csv")
    assert len(rows) == 2 + 3  # old (RW, sum w=1) logits rows + RW, sum w=1, sum w=2 softmax
    assert {r["weight"] for r in rows if r["method"] == "RW"} == {""}
    keys = [tuple(r[c] for c in SCORE_COLUMNS[:9]) for r in rows]
    assert len(keys) == len(set(keys))


def test_missing_text_is_an_error_naming_the_task(tmp_path: Path, toy_texts: ToyTexts) -> None:
    root = tmp_path / "cache"
    texts = toy_texts["MoeeToyPairClassification"]
    write_synthetic_task(root, "MoeeToyPairClassification", texts[:-2])
    only = ("MoeeToyPairClassification",)
    with pytest.raises(MissingTextsError, match=r"MoeeToyPairClassification: 2 of \d+ texts"):
        run_score(_config(root, tmp_path / "r", tasks=only, zscore_fit="task"))
    record_split_texts(root, "MoeeToyPairClassification")
    with pytest.raises(MissingTextsError, match=r"MoeeToyPairClassification/test: 2 of \d+ texts"):
        run_score(_config(root, tmp_path / "r", tasks=only))


def test_split_fit_without_recorded_texts_is_one_line(tmp_path: Path, toy_texts: ToyTexts) -> None:
    root = tmp_path / "cache"
    write_synthetic_task(root, "MoeeToySTS", toy_texts["MoeeToySTS"])  # no record of split texts
    args = ["score", "--model", MODEL, "--cache-dir", str(root), "--output", str(tmp_path / "r")]
    result = CliRunner().invoke(main, args)
    assert result.exit_code != 0
    message = result.output.strip().splitlines()[-1]
    assert "re-extract" in message and "--zscore-fit task" in message
    assert not (tmp_path / "r" / "scores.csv").exists()
    ok = CliRunner().invoke(main, [*args, "--zscore-fit", "task", "--method", "HS"])
    assert ok.exit_code == 0, ok.output


@pytest.mark.parametrize("bad", ["-1", "abc", "nan", "inf", "1e308", "1000001"])
def test_unknown_weight_is_one_line(bad: str, tmp_path: Path) -> None:
    result = CliRunner().invoke(main, ["score", "--weight", bad, "--cache-dir", str(tmp_path)])
    assert result.exit_code == 2
    assert "use a number >= 0 or `auto` (at most 10000)" in result.output


@pytest.mark.parametrize("bad", [-1.0, float("nan"), float("inf"), 1e308, 1e4 * (1 + 1e-9)])
def test_a_weight_the_arithmetic_cannot_hold_is_refused_by_the_library_too(bad: float) -> None:
    from moee_pipeline.score.combine import Combination, CombineError

    with pytest.raises(ScoreError, match="use a number from 0 to 10000"):
        ScoreConfig(model=MODEL, weights=(1.0, bad))
    with pytest.raises(CombineError, match="use a number from 0 to 10000"):
        Combination("MoEE-sum", weight=bad)
    assert ScoreConfig(model=MODEL, weights=(0.0, 1e4)).weights == (0.0, 1e4)


def test_the_largest_weight_still_resolves_the_hs_term() -> None:
    """At MAX_WEIGHT the packed float32 vectors stay finite and their float32 dot product is
    cos(hs) + w * cos(rw) to within a small part of the HS term's range (2): the bound is
    where float32 arithmetic still holds the weighted sum, 1e308 (inf in float32) is not."""
    from moee_pipeline.score.combine import Combination, Parts, embed
    from moee_pipeline.vocabulary import MAX_WEIGHT

    rng = np.random.default_rng(0)
    hs, rw = _unit(rng.standard_normal((50, 16))), _unit(rng.standard_normal((50, 12)))
    parts = Parts(hs=None, hs_z=None, rw_z=None, hs_unit=hs.astype(np.float32),
                  rw_unit=rw.astype(np.float32))  # fmt: skip
    packed = embed(parts, Combination("MoEE-sum", weight=MAX_WEIGHT))
    assert packed.dtype == np.float32 and np.isfinite(packed).all()
    want = hs @ hs.T + MAX_WEIGHT * (rw @ rw.T)
    assert np.abs((packed @ packed.T).astype(np.float64) - want).max() < 0.01
    with np.errstate(over="ignore"):
        assert not np.isfinite(np.float32(np.sqrt(1e308)) ** 2)  # what 1e308 would have done


def test_a_score_that_is_not_a_number_is_its_tasks_error_and_the_rest_is_written(
    cache: Path, tmp_path: Path, toy_texts: dict[str, list[str]]
) -> None:
    """Every text alike: every STS similarity is equal and Spearman is undefined (NaN)."""
    write_synthetic_task(cache, "MoeeToySTS", toy_texts["MoeeToySTS"], alike=True)
    out = tmp_path / "r"
    args = ["score", "--model", MODEL, "--cache-dir", str(cache), "--output", str(out),
            "--method", "HS", "--method", "RW",
            "--tasks", "MoeeToySTS,MoeeToyPairClassification"]  # fmt: skip
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 1 and isinstance(result.exception, SystemExit), result.output
    errors = [line for line in result.output.splitlines() if line.startswith("Error:")]
    assert errors == [
        "Error: MoeeToySTS (test): its cosine_spearman is not a number in 2 of 2 evaluation(s),"
        " as a correlation over constant gold scores or identical texts is; no row written:"
        " check the task's data"
    ]
    rows = read_scores(out / "scores.csv")
    assert sorted((r["task"], r["method"]) for r in rows) == [
        ("MoeeToyPairClassification", "HS"), ("MoeeToyPairClassification", "RW")
    ]  # fmt: skip
    assert all(np.isfinite(float(r["main_score"])) for r in rows)
    assert "MoeeToyPairClassification" in result.output  # its table is shown
    assert not list(out.rglob("MoeeToySTS.json"))  # nor a file in mteb's results folder
    assert len(list(out.rglob("MoeeToyPairClassification.json"))) == 2
    report = CliRunner().invoke(main, ["report", "--results", str(out)])
    assert report.exit_code == 0, report.output


def test_constant_gold_scores_give_no_row_and_the_library_says_which_task(
    cache: Path, tmp_path: Path
) -> None:
    from moee_pipeline.score.run import UnscoredTasksError
    from moee_pipeline.tasks import load_task, split_texts, write_snapshot

    task = load_task("MoeeToySTS")
    assert task.dataset is not None
    task.dataset["test"] = task.dataset["test"].map(lambda _: {"score": 2.5})
    write_snapshot(task, cache_dir=cache, overwrite=True)  # the texts stay, their gold is flat
    split_texts(task, cache_dir=cache)
    config = _config(cache, tmp_path / "r", tasks=("MoeeToySTS", "MoeeToyClustering"),
                     methods=("HS", "MoEE-sum"), auto_weight=True)  # fmt: skip
    with pytest.raises(UnscoredTasksError) as caught:
        run_score(config)
    (line,) = caught.value.lines
    assert line.startswith("MoeeToySTS (test): its cosine_spearman is not a number in 3 of 3")
    written = read_scores(tmp_path / "r" / "scores.csv")
    assert {r["task"] for r in written} == {"MoeeToyClustering"}
    assert len(written) == len(caught.value.rows) == 3  # HS, MoEE-sum w=1 and auto
    assert not list((tmp_path / "r").rglob("MoeeToySTS.json"))


def test_a_task_without_a_score_makes_the_terminal_average_nan_not_smaller() -> None:
    from moee_pipeline.score.combine import Combination
    from moee_pipeline.score.encoder import TaskScore
    from moee_pipeline.score.rows import Provenance, ScoreRow

    provenance = Provenance("none", "float32", "r", "512", "abc", "split")
    scored: list[tuple[str, str, Method, float]] = [
        ("STS12", "STS", "HS", 0.5), ("STS12", "STS", "RW", 0.4),
        ("SummEval", "Summarization", "HS", 0.3),
    ]  # fmt: skip
    rows = [
        ScoreRow("m", "none", Combination(m), TaskScore(t, k, "test", "x", s), provenance)
        for t, k, m, s in scored
    ]
    cells = {line.split("|")[0].strip(): [c.strip() for c in line.split("|")[1:]]
             for line in format_table(rows).splitlines() if "|" in line}  # fmt: skip
    assert cells[PAPER_AVERAGE_LABEL] == ["40.00", "nan"]  # RW has no Summarization score
    assert cells["[Summarization] avg"] == ["30.00", "nan"]


def test_combinations_expand_sweeps() -> None:
    config = ScoreConfig(model=MODEL, weights=(0.5, 1.0), rw=("logits", "softmax"))
    combos = combinations(config)
    methods = [c.method for c in combos]
    assert methods.count("HS") == 1  # router options do not apply to HS
    assert methods.count("RW") == 2 and methods.count("MoEE-sum") == 4


def test_cli_score(cache: Path, tmp_path: Path) -> None:
    out = tmp_path / "cli"
    args = ["score", "--model", MODEL, "--cache-dir", str(cache), "--output", str(out)]
    result = CliRunner().invoke(
        main, [*args, "--tasks", "MoeeToySTS", "--method", "HS", "--method", "MoEE-sum"]
    )
    assert result.exit_code == 0, result.output
    assert "MoeeToySTS" in result.output and PAPER_AVERAGE_LABEL in result.output
    assert len(read_scores(out / "scores.csv")) == 2
    bad = CliRunner().invoke(main, [*args, "--tasks", "MoeeToySTS", "--prompt", "prompteol"])
    assert bad.exit_code != 0
    assert "moee extract" in bad.output and "Traceback" not in bad.output
    bad_layers = CliRunner().invoke(main, [*args, "--tasks", "MoeeToySTS", "--layers", "0-9"])
    assert bad_layers.exit_code != 0 and "out of range" in bad_layers.output


def test_hs_rerun_under_other_rw_options_replaces_its_row(cache: Path, tmp_path: Path) -> None:
    out = tmp_path / "r"
    run_score(_config(cache, out, tasks=("MoeeToySTS",), methods=("HS",)))
    run_score(_config(cache, out, tasks=("MoeeToySTS",), methods=("HS",), rw=("softmax",)))
    rows = read_scores(out / "scores.csv")
    assert len(rows) == 1 and rows[0]["rw"] == "softmax"


def test_cli_leaves_home_cache_alone(tmp_path: Path) -> None:
    """mteb creates ~/.cache/mteb on import; the CLI points it elsewhere."""
    import os
    import subprocess
    import sys

    env = {k: v for k, v in os.environ.items() if k != "MTEB_CACHE"} | {"HOME": str(tmp_path)}
    args = ["score", "--model", "x", "--cache-dir", str(tmp_path / "none")]
    done = subprocess.run(
        [sys.executable, "-m", "moee_pipeline", *args], env=env, capture_output=True, text=True
    )
    assert done.returncode != 0 and "run `moee extract` first" in done.stderr
    assert not (tmp_path / ".cache").exists()


def test_pooling_softmax_layers_and_no_zscore_use_the_right_features(
    cache: Path, tmp_path: Path
) -> None:
    """--pooling mean, --rw softmax, --layers 1-2, --zscore none, recomputed from Parquet."""
    from moee_pipeline.tasks import load_task

    config = _config(
        cache, tmp_path / "r", tasks=("MoeeToySTS",), methods=("HS", "RW"),
        pooling=("mean",), rw=("softmax",), layers=("1-2",), zscore=("none",),
    )  # fmt: skip
    got = {r.combo.method: r.score.main_score for r in run_score(config)}
    feats = store.read_features(
        cache, model=MODEL, prompt_id=PROMPT, task="MoeeToySTS", columns=("hs_mean", "rw_mean")
    )
    row = {t: i for i, t in enumerate(feats.text_ids)}
    logits = feats.arrays["rw_mean"].astype(np.float64).reshape(-1, L, E)[:, 1:3]
    probs = np.exp(logits) / np.exp(logits).sum(axis=2, keepdims=True)
    vectors: dict[Method, np.ndarray] = {
        "HS": feats.arrays["hs_mean"].astype(np.float64),
        "RW": probs.reshape(len(row), -1),
    }
    task = load_task("MoeeToySTS")
    assert task.dataset is not None
    ds = task.dataset["test"]
    a = [row[parts.text_id(t)] for t in ds["sentence1"]]
    b = [row[parts.text_id(t)] for t in ds["sentence2"]]
    for method, x in vectors.items():
        cosine = (_unit(x[a]) * _unit(x[b])).sum(axis=1)
        expected = spearmanr(cosine, ds["score"]).statistic
        assert got[method] == pytest.approx(expected, abs=1e-6), method


def test_auto_weight_on_the_pairs_sts_scores_and_beside_fixed_weights(
    cache: Path, tmp_path: Path
) -> None:
    out = tmp_path / "r"
    args = ["score", "--model", MODEL, "--cache-dir", str(cache), "--output", str(out)]
    args += ["--tasks", "MoeeToySTS,MoeeToyClustering", "--method", "MoEE-sum"]
    result = CliRunner().invoke(main, [*args, "--weight", "auto", "--weight", "2"])
    assert result.exit_code == 0, result.output
    rows = read_scores(out / "scores.csv")
    assert sorted((r["task"], r["weight_rule"]) for r in rows) == [
        ("MoeeToyClustering", "auto"), ("MoeeToyClustering", "fixed"),
        ("MoeeToySTS", "auto"), ("MoeeToySTS", "fixed"),
    ]  # fmt: skip
    assert "MoEE-sum(w=auto)" in result.output
    alpha = next(
        float(r["weight"]) for r in rows if r["weight_rule"] == "auto" and "STS" in r["task"]
    )

    # independently: cosines of the test pairs under z(hs), z(rw), then the brute-force search
    pairs, _ = _pair_vectors(cache, "MoeeToySTS", 1.0)
    hs_a, hs_b, rw_a, rw_b = pairs.pop("z-parts")
    s_hs = (_unit(hs_a) * _unit(hs_b)).sum(1)
    s_rw = (_unit(rw_a) * _unit(rw_b)).sum(1)
    best_alpha, best_j = brute_force(s_hs, s_rw)
    final = s_hs + alpha * s_rw
    j = spearmanr(final, s_hs).statistic + spearmanr(final, s_rw).statistic
    assert j >= best_j - 1e-3 and alpha <= best_alpha * 1.03
    # the auto row scores exactly what a fixed weight equal to alpha scores
    again = run_score(_config(cache, tmp_path / "fixed", tasks=("MoeeToySTS",),
                              methods=("MoEE-sum",), weights=(alpha,)))  # fmt: skip
    auto_score = next(float(r["main_score"]) for r in rows if r["weight_rule"] == "auto"
                      and r["task"] == "MoeeToySTS")  # fmt: skip
    assert again[0].score.main_score == auto_score


def test_terminal_table_averages_the_papers_six_types_only() -> None:
    from moee_pipeline.score.combine import Combination
    from moee_pipeline.score.encoder import TaskScore
    from moee_pipeline.score.rows import Provenance, ScoreRow

    provenance = Provenance("none", "float32", "r", "512", "abc", "split")
    scored = [("STS12", "STS", 0.5), ("STS13", "STS", 0.7), ("ArguAna", "Retrieval", 0.9)]
    rows = [
        ScoreRow("m", "none", Combination("HS"), TaskScore(t, k, "test", "x", s), provenance)
        for t, k, s in scored
    ]
    lines = {line.split("|")[0].strip(): line.split("|")[1].strip() for line in
             format_table(rows).splitlines() if "|" in line}  # fmt: skip
    assert lines["[STS] avg"] == "60.00" and lines["[Retrieval] avg"] == "90.00"
    assert lines[PAPER_AVERAGE_LABEL] == "60.00"  # the paper's types only
    assert list(lines)[1:4] == ["STS12", "STS13", "ArguAna"]  # the paper's types first


@pytest.mark.parametrize(
    "field",
    ["tasks", "task_types", "prompts", "methods", "rw", "pooling", "layers", "zscore", "splits"],
)
def test_an_empty_selection_is_refused_by_the_library(field: str) -> None:

    with pytest.raises(ScoreError, match="names nothing"):
        ScoreConfig(model=MODEL, **{field: ()})  # type: ignore[arg-type]
    with pytest.raises(ScoreError, match="MoEE-sum needs a --weight"):
        ScoreConfig(model=MODEL, weights=())
    assert ScoreConfig(model=MODEL, weights=(), auto_weight=True).auto_weight


@pytest.mark.parametrize(
    "args",
    [
        ("--tasks", ""), ("--tasks", ","), ("--tasks", " , "), ("--task-types", ""),
        ("--task-types", ","), ("--layers", ""), ("--layers", ","),
    ],
)  # fmt: skip
def test_an_empty_selection_is_one_line_before_anything_runs(
    args: tuple[str, str], cache: Path, tmp_path: Path
) -> None:
    out = tmp_path / "r"
    base = ["score", "--model", MODEL, "--cache-dir", str(cache), "--output", str(out)]
    result = CliRunner().invoke(main, [*base, *args])
    assert result.exit_code != 0 and isinstance(result.exception, SystemExit), result.output
    (error,) = [line for line in result.output.splitlines() if line.startswith("Error:")]
    assert "names nothing" in error or "bad --layers" in error, error
    assert not out.exists()


@pytest.mark.parametrize(
    "inside", ["features", "features/model=x", "tasks", "tasks/MoeeToySTS/results", "quarantine"]
)
def test_output_inside_the_cache_is_refused_before_anything_is_written(
    inside: str, cache: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from moee_pipeline.cache.errors import CacheError

    before = sorted(p.relative_to(cache) for p in cache.rglob("*"))
    target = cache / inside
    monkeypatch.chdir(tmp_path)
    folder = inside.split("/")[0]
    for output in (target, Path(os.path.relpath(target, tmp_path))):  # absolute and relative
        with pytest.raises(CacheError, match=f"{output} is inside the cache's {folder} folder"):
            _config(cache, output)
        result = CliRunner().invoke(
            main, ["score", "--model", MODEL, "--cache-dir", str(cache), "--output", str(output)]
        )
        assert result.exit_code == 1, result.output
        assert f"is inside the cache's {folder} folder" in result.output.strip().splitlines()[-1]
    link = tmp_path / "link"
    link.symlink_to(cache / layout.FEATURES, target_is_directory=True)
    with pytest.raises(CacheError, match="is inside the cache's features folder"):
        _config(cache, link / "model=x")
    monkeypatch.setenv(layout.CACHE_ENV, str(cache))  # the default cache counts as well
    with pytest.raises(CacheError, match=f"is inside the cache's {folder} folder"):
        _config(tmp_path / "other-cache", target)
    assert sorted(p.relative_to(cache) for p in cache.rglob("*")) == before  # nothing written
    _config(cache, cache / "results")  # beside the cache's folders is fine


def test_an_unreadable_mteb_result_is_refused_and_kept(cache: Path, tmp_path: Path) -> None:
    out = tmp_path / "r"
    run_score(_config(cache, out, tasks=("MoeeToySTS",), methods=("HS",)))
    (result,) = out.rglob("MoeeToySTS.json")
    result.write_text('{"task_name": "MoeeToySTS", "sco')  # e.g. an old version killed mid-write
    with pytest.raises(ScoreError, match=r"MoeeToySTS\.json cannot be read as an mteb result"):
        run_score(_config(cache, out, tasks=("MoeeToySTS",), methods=("HS",)))
    assert result.read_text() == '{"task_name": "MoeeToySTS", "sco'


def test_skipped_benchmark_tasks_are_written_beside_the_scores_and_noted_in_the_report(
    cache: Path, tmp_path: Path
) -> None:
    from moee_pipeline.cache.skipped import read_skipped

    out = tmp_path / "results"
    skipped = (("BUCC", "BitextMining"), ("Tatoeba", "BitextMining"))
    run_score(_config(cache, out, tasks=("MoeeToySTS",), methods=("HS",), skipped=skipped))
    assert read_skipped(out) == dict(skipped)
    report = CliRunner().invoke(main, ["report", "--results", str(out)])
    assert report.exit_code == 0, report.output
    assert "not scored, of types we do not score: BUCC (BitextMining), Tatoeba" in report.output


def test_retrieval_is_a_task_type_score_takes_without_tasks(cache: Path, tmp_path: Path) -> None:
    """--task-types Retrieval alone selects the cached Retrieval tasks (none here), and is not
    refused as a type no paper task has."""
    with pytest.raises(store.CacheError, match="no complete cached tasks"):
        run_score(_config(cache, tmp_path / "results", task_types=("Retrieval",)))
