"""Scoring an entry read from disk in chunks gives the scores of the entry held in memory, and
no read decodes more than a row group (a small chunk size forces the chunked path)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from moee_pipeline.cache import source
from moee_pipeline.score import unit
from moee_pipeline.score.config import ScoreConfig
from moee_pipeline.score.run import run_score
from moee_pipeline.score.sweep import combinations
from moee_pipeline.testing.toy import TOY_TASKS
from moee_pipeline.testing.toy_retrieval import TOY_RETRIEVAL_TASKS
from tests.support.synthetic import MODEL, record_split_texts, write_synthetic_task

GROUP = 8
#: The six toy tasks and a toy Retrieval task (its corpus searched 5 documents at a time).
TASKS = (*TOY_TASKS, next(iter(TOY_RETRIEVAL_TASKS)))


@pytest.fixture
def grouped_cache(tmp_path: Path) -> Path:
    """The tasks' synthetic features, in row groups of GROUP rows."""
    from moee_pipeline.tasks import load_task, task_texts

    root = tmp_path / "cache"
    for name in TASKS:
        write_synthetic_task(root, name, task_texts(load_task(name)), row_group_rows=GROUP)
        record_split_texts(root, name)
    return root


def test_chunked_scores_equal_the_in_memory_ones_and_reads_stay_within_a_row_group(
    grouped_cache: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def config(out: str, chunk_rows: int) -> ScoreConfig:
        return ScoreConfig(
            model=MODEL,
            tasks=TASKS,
            cache_dir=grouped_cache,
            output=tmp_path / out,
            progress=False,
            weights=(2.0,),
            auto_weight=True,
            rw=("softmax",),
            layers=("0-1",),
            chunk_rows=chunk_rows,
        )

    held = _by_key(run_score(config("held", 1_000_000)))
    reads: list[int] = []

    def observed(*args: Any, **kwargs: Any) -> source.FeatureSource:
        return source.open_source(*args, **kwargs, observer=reads.append)

    monkeypatch.setattr(unit, "open_source", observed)
    chunked = _by_key(run_score(config("chunked", 5)))
    assert reads and max(reads) <= GROUP  # every toy task (more than 5 rows) was streamed
    assert held.keys() == chunked.keys()
    assert len(held) == len(TASKS) * len(combinations(config("any", 1)))
    for key, score in held.items():
        assert chunked[key] == pytest.approx(score, abs=1e-6), key


def _by_key(rows: list[Any]) -> dict[tuple[object, ...], float]:
    return {(r.combo.folder, r.score.task, r.score.split): r.score.main_score for r in rows}


def test_every_layers_hidden_states_stream_like_the_entry_held_in_memory(tmp_path: Path) -> None:
    """Several HS layers are each scaled to unit RMS on the fit rows: fitted in the same
    streaming pass, they give the scores of the whole matrix (`combine.hs_features`)."""
    from moee_pipeline.tasks import load_task, task_texts

    tasks = ("MoeeToySTS", next(iter(TOY_RETRIEVAL_TASKS)))
    root = tmp_path / "cache"
    for name in tasks:
        texts = task_texts(load_task(name))
        write_synthetic_task(root, name, texts, row_group_rows=GROUP, hs_layers=True)
        record_split_texts(root, name)

    def config(out: str, chunk_rows: int) -> ScoreConfig:
        return ScoreConfig(
            model=MODEL,
            tasks=tasks,
            cache_dir=root,
            output=tmp_path / out,
            progress=False,
            weights=(0.5,),
            hs_layers=("all", "0,2", "1"),
            zscore=("auto", "none"),
            chunk_rows=chunk_rows,
        )

    held = _by_key(run_score(config("held", 1_000_000)))
    chunked = _by_key(run_score(config("chunked", 5)))
    assert held.keys() == chunked.keys() and len(held) > len(tasks) * 4
    for key, score in held.items():
        assert chunked[key] == pytest.approx(score, abs=1e-6), key
