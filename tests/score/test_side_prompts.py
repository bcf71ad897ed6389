"""Scoring a retrieval task whose queries and documents have their own templates: one unit of
the two entries, each text looked up in its side's rows, one set of z-score statistics over
queries and documents together, and both prompts in every score's provenance."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from moee_pipeline.cache import layout, parts, store
from moee_pipeline.prompts import resolve_prompt
from moee_pipeline.sides import pair_label
from tests.support.cli import cli, cli_ok
from tests.support.ndcg import ndcg_at_10
from tests.support.scores import read_scores

TASK, OTHER, RERANKING = "MoeeToyRetrieval", "MoeeToySTS", "MoeeToyReranking"
QUERY_TEMPLATE = "Find documents for: {text}"
QUERY_ID = resolve_prompt(QUERY_TEMPLATE).id
LABEL = pair_label(QUERY_ID, "none")


def _rw(cache: Path, model: Path, prompt: str) -> dict[str, np.ndarray]:
    f = store.read_features(cache, model=str(model), prompt_id=prompt, task=TASK,
                            columns=["rw_last"])  # fmt: skip
    return {t: f.arrays["rw_last"][i].astype(np.float64) for i, t in enumerate(f.text_ids)}


def _split(cache: Path) -> Any:
    from moee_pipeline.tasks import load_task

    return load_task(TASK, cache_dir=cache).dataset["default"]["test"]  # type: ignore[index]


def _expected_rw_ndcg(cache: Path, model: Path) -> float:
    """nDCG@10 of RW (z-scored logits, last token) from the two entries' vectors, by hand: the
    queries' rows from the query prompt's entry, the documents' from `none`'s, one mean and
    std over both sets of rows."""
    split = _split(cache)
    queries = dict(zip(split["queries"]["id"], split["queries"]["text"], strict=True))
    corpus = split["corpus"]
    documents = {
        i: (t + " " + x).strip()
        for i, t, x in zip(corpus["id"], corpus["title"], corpus["text"], strict=True)
    }
    relevant = split["relevant_docs"]
    by_query, by_document = _rw(cache, model, QUERY_ID), _rw(cache, model, "none")
    judged = [t for q, t in queries.items() if relevant.get(q)]
    rows = np.array(
        [by_query[parts.text_id(t)] for t in judged]
        + [by_document[parts.text_id(t)] for t in documents.values()]
    )
    mean, std = rows.mean(axis=0), rows.std(axis=0)
    query_texts, document_texts = set(queries.values()), set(documents.values())

    def vectors(texts: Any) -> np.ndarray:
        # the helper asks for all queries, then all documents
        side = by_query if set(texts) <= query_texts else by_document
        assert set(texts) <= (query_texts if side is by_query else document_texts)
        return (np.array([side[parts.text_id(t)] for t in texts]) - mean) / (std + 1e-8)

    return ndcg_at_10(queries, documents, relevant, vectors)


@pytest.mark.slow
def test_two_templates_score_from_both_entries_with_both_prompts_in_provenance(
    tiny_model: Callable[[str], Path], tmp_path: Path
) -> None:
    model, cache, results = tiny_model("olmoe"), tmp_path / "cache", tmp_path / "results"
    tasks = f"{TASK},{OTHER},{RERANKING}"
    common = ("--model", str(model), "--cache-dir", str(cache), "--tasks", tasks)
    out = cli_ok("extract", *common, "--query-prompt", QUERY_TEMPLATE)
    assert f"{OTHER} [none]:" in out  # a task without sides: under --prompt
    assert f"{RERANKING} [{QUERY_ID}]: 12 rows" in out  # reranking has queries and documents
    score = ("score", *common, "--output", str(results), "--method", "RW", "--method", "HS")
    cli_ok(*score, "--query-prompt", QUERY_TEMPLATE)
    rows = {(r["task"], r["prompt"], r["method"]): r for r in read_scores(results)}
    assert set(rows) == {
        (t, p, m)
        for t, p in ((TASK, LABEL), (OTHER, "none"), (RERANKING, LABEL))
        for m in ("RW", "HS")
    }
    entries = [layout.task_dir(cache, model=str(model), prompt_id=p, task=TASK)
               for p in (QUERY_ID, "none")]  # fmt: skip
    both = [store.features_fingerprint(store.read_manifest(e) or {}) for e in entries]
    assert rows[(TASK, LABEL, "RW")]["features"] == "+".join(both)
    expected = _expected_rw_ndcg(cache, model)
    assert 0.0 < expected < 1.0
    assert float(rows[(TASK, LABEL, "RW")]["main_score"]) == pytest.approx(expected, abs=1e-5)
    # mteb's experiment of the score names both prompts
    metas = [json.loads(p.read_text()) for p in (results / "mteb").rglob("model_meta.json")]
    prompts = {m.get("experiment_kwargs", {}).get("prompt") for m in metas}
    assert LABEL in prompts
    # the auto weight's (query, document) pairs come from each side's entry
    cli_ok("score", *common, "--output", str(tmp_path / "auto"), "--method", "MoEE-sum",
           "--weight", "auto", "--query-prompt", QUERY_TEMPLATE)  # fmt: skip
    (auto,) = [r for r in read_scores(tmp_path / "auto") if r["task"] == TASK]
    assert {r["prompt"] for r in read_scores(tmp_path / "auto")} == {LABEL, "none"}
    assert (auto["prompt"], auto["weight_rule"]) == (LABEL, "auto")
    assert float(auto["weight"]) > 0 and 0.0 < float(auto["main_score"]) <= 1.0
    # the documents' entry holds only them: a plain score names the extraction it needs
    code, refused = cli(*score)
    assert code != 0 and "7 of 31 texts are not in the feature cache" in refused
    assert "--prompt none" in refused
    # once a plain run extends it, a plain score is another row, replacing none of these
    cli_ok("extract", *common)
    cli_ok(*score)
    plain = {(r["task"], r["prompt"], r["method"]): r for r in read_scores(results)}
    assert {(TASK, LABEL, "RW"), (TASK, "none", "RW")} <= set(plain)
    assert plain[(TASK, LABEL, "RW")] == rows[(TASK, LABEL, "RW")]
    assert plain[(TASK, "none", "RW")]["features"] == both[1]
    report = cli_ok("report", "--results", str(results))
    assert LABEL in report


def test_side_prompts_that_cannot_be_scored_are_one_line(tmp_path: Path) -> None:
    base = ("score", "--cache-dir", str(tmp_path / "cache"), "--output", str(tmp_path / "out"),
            "--tasks", TASK, "--query-prompt", "style")  # fmt: skip
    for extra, words in (
        (("--prompt", "none", "--prompt", "prompteol"), "take one --prompt"),
        (("--zscore-fit", "task"), "--zscore-fit split"),
    ):
        code, out = cli(*base, *extra)
        assert code != 0
        assert out.strip().count("\n") == 0, out
        assert words in out
