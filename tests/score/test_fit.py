"""Split-clean statistics, the auto weight on real scoring runs, provenance and mteb's reader."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import mteb
import numpy as np
import pytest
from datasets import Dataset

from moee_pipeline.cache import layout, store
from moee_pipeline.score.config import ScoreConfig
from moee_pipeline.score.run import run_score
from moee_pipeline.tasks import load_task, split_texts, write_snapshot
from tests.support.scores import read_scores
from tests.support.synthetic import MODEL, write_synthetic_task

TASKS = ("MoeeToySTS", "MoeeToyClassification")


def _with_validation(name: str, *, shuffle_labels: bool = False) -> Any:
    """The toy task plus a validation split of other texts (labels optionally shuffled)."""
    task = load_task(name)
    assert task.dataset is not None
    test = task.dataset["test"]
    columns = ["sentence1", "sentence2"] if "sentence1" in test.column_names else ["text"]
    validation = test.map(lambda row: {c: f"Validation: {row[c]}" for c in columns})
    task.dataset["validation"] = validation
    if shuffle_labels:
        label = "score" if "score" in test.column_names else "label"
        rng = np.random.default_rng(1)
        # the evaluated splits' labels; train labels decide which few-shot rows mteb encodes,
        # so they are part of what a split's evaluation encodes, not a label it is scored on
        for split in ("test", "validation"):
            data = task.dataset[split]
            shuffled = list(rng.permutation(np.asarray(data[label])))
            task.dataset[split] = data.remove_columns(label).add_column(
                label, shuffled, feature=data.features[label]
            )
    return task


def _cache(root: Path, splits: tuple[str, ...], *, shuffle_labels: bool = False) -> Path:
    """Snapshot + recorded split texts + synthetic features covering `splits`."""
    for name in TASKS:
        task = _with_validation(name, shuffle_labels=shuffle_labels)
        write_snapshot(task, cache_dir=root, overwrite=True)
        per_split = split_texts(task, splits=list(splits), cache_dir=root)
        texts = [t for s in reversed(splits) for t in per_split[s]]  # other splits' rows first
        write_synthetic_task(root, name, list(dict.fromkeys(texts)))
    return root


def _scores(out: Path) -> dict[tuple[str, ...], str]:
    rows = read_scores(out / "scores.csv")
    return {(r["method"], r["weight"], r["task"], r["split"]): r["main_score"] for r in rows}


def _config(cache: Path, out: Path, **kw: Any) -> ScoreConfig:
    kw = {"tasks": TASKS, **kw}
    return ScoreConfig(model=MODEL, cache_dir=cache, output=out, progress=False, **kw)


@pytest.mark.slow
def test_test_scores_bit_identical_after_cache_gains_validation(tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    kw: dict[str, Any] = {"weights": (0.5,), "zscore": ("auto", "all")}
    control: dict[str, Any] = {"zscore_fit": "task", "methods": ("RW",), "tasks": TASKS[:1]}
    _cache(cache, ("test",))
    run_score(_config(cache, tmp_path / "before", **kw))
    before_task = run_score(_config(cache, tmp_path / "before-task", **control))

    _cache(cache, ("test", "validation"))  # the same task extended with validation texts
    rows = run_score(_config(cache, tmp_path / "after", splits=("test", "validation"), **kw))
    assert {r.score.split for r in rows} == {"test", "validation"}
    before, after = _scores(tmp_path / "before"), _scores(tmp_path / "after")
    assert before and all(after[key] == value for key, value in before.items())  # exact strings

    # the control: task-wide statistics do move the test scores
    after_task = run_score(_config(cache, tmp_path / "after-task", **control))
    moved = {
        (a.combo, a.score.task): (a.score.main_score, b.score.main_score)
        for a, b in zip(before_task, after_task, strict=True)
        if a.score.main_score != b.score.main_score
    }
    assert moved


@pytest.mark.slow
def test_auto_weight_ignores_labels(tmp_path: Path) -> None:
    def alphas(root: Path, shuffle: bool) -> dict[tuple[str, str], float]:
        _cache(root, ("test", "validation"), shuffle_labels=shuffle)
        rows = run_score(
            _config(
                root,
                root.parent / f"out-{shuffle}",
                methods=("MoEE-sum",),
                weights=(),
                auto_weight=True,
                splits=("test", "validation"),
            )
        )
        assert {r.combo.weight_rule for r in rows} == {"auto"}
        found: dict[tuple[str, str], float] = {}
        for r in rows:
            assert r.combo.weight is not None  # the alpha the rule chose
            found[(r.score.task, r.score.split)] = r.combo.weight
        return found

    plain = alphas(tmp_path / "a" / "cache", False)
    shuffled = alphas(tmp_path / "b" / "cache", True)
    assert len(plain) == 4 and plain == shuffled
    assert all(0.01 <= a <= 100 for a in plain.values())


@pytest.mark.slow
def test_nf4_and_bf16_rows_side_by_side_and_mteb_reads_them(tmp_path: Path) -> None:
    cache, out = tmp_path / "cache", tmp_path / "results"
    _cache(cache, ("test",))
    manifest_of = {}
    for quantization, dtype in (("nf4", "bfloat16"), ("none", "bfloat16")):
        for name in TASKS:
            folder = layout.task_dir(cache, model=MODEL, prompt_id="none", task=name)
            manifest = json.loads((folder / store.MANIFEST).read_text())
            manifest.update(quantization=quantization, dtype=dtype, max_length=512)
            store.write_json_atomic(folder / store.MANIFEST, manifest)
            manifest_of[quantization] = manifest
        run_score(_config(cache, out, methods=("RW", "MoEE-sum"), auto_weight=True))
    rows = read_scores(out / "scores.csv")
    assert {r["quantization"] for r in rows} == {"nf4", "none"}
    assert len(rows) == 2 * len(TASKS) * 3  # RW, sum w=1, sum auto per run
    fingerprints = {r["quantization"]: r["features"] for r in rows}
    assert fingerprints["nf4"] != fingerprints["none"]
    assert fingerprints["nf4"] == store.features_fingerprint(manifest_of["nf4"])
    assert {r["max_length"] for r in rows} == {"512"} and {r["zscore_fit"] for r in rows} == {
        "split"
    }
    assert {r["weight_rule"] for r in rows if r["method"] == "MoEE-sum"} == {"fixed", "auto"}

    loaded = mteb.ResultCache(out / "mteb").load_results(
        load_experiments="match_name", include_remote=False
    )
    read_back = {}
    for model_result in loaded.model_results:
        meta = model_result.model_meta
        assert meta is not None and meta.experiment_kwargs
        kwargs = meta.experiment_kwargs
        for task_result in model_result.task_results:
            key = (
                kwargs["features"],
                kwargs["method"],
                kwargs.get("weight", ""),
                task_result.task_name,
            )
            read_back[key] = task_result.get_score(splits=["test"])
    expected = {
        (
            r["features"],
            r["method"],
            "auto" if r["weight_rule"] == "auto" else r["weight"],
            r["task"],
        ): round(float(r["main_score"]), 6)  # mteb writes scores rounded to 6 decimals
        for r in rows
    }
    assert read_back == pytest.approx(expected, abs=1e-12)
    assert len({m.experiment_name for m in loaded.model_results}) == len(loaded.model_results)


def test_old_scores_csv_reads_with_empty_provenance(tmp_path: Path) -> None:
    from moee_pipeline.cache.scores import merge_rows
    from moee_pipeline.report.tables import load_scores

    old_header = "model,prompt,method,weight,rw,zscore,pooling,layers,task,task_type,split,"
    old_header += "main_metric,main_score\n"
    path = tmp_path / "scores.csv"
    path.write_text(old_header + "m,none,RW,,logits,auto,last,all,T,STS,test,cosine_spearman,0.5\n")
    frame = load_scores(path)
    assert frame.loc[0, "features"] == "" and frame.loc[0, "weight_rule"] == ""
    new = {
        "model": "m", "prompt": "none", "method": "RW", "weight": "", "weight_rule": "",
        "rw": "logits", "zscore": "auto", "pooling": "last", "layers": "all", "task": "T",
        "task_type": "STS", "split": "test", "main_metric": "cosine_spearman",
        "main_score": "0.6", "quantization": "nf4", "dtype": "bfloat16", "revision": "r",
        "max_length": "512", "features": "abc", "zscore_fit": "split",
    }  # fmt: skip
    merge_rows(path, [new])
    both = load_scores(path)
    assert sorted(both["main_score"]) == [0.5, 0.6]  # the old row is kept, not overwritten


def test_dataset_helper_keeps_rows() -> None:
    task = _with_validation("MoeeToySTS")
    assert isinstance(task.dataset["validation"], Dataset)
    assert len(task.dataset["validation"]) == len(task.dataset["test"])
