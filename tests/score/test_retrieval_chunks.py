"""A retrieval corpus scored from disk in chunks: mteb's search embeds `corpus_chunk_size`
documents at a time, each computed from the row groups that hold them, and the score is the
one of the whole matrix in memory (real SciFact texts, synthetic features)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
from mteb.abstasks import AbsTask

from moee_pipeline.cache.source import open_source
from moee_pipeline.score.combine import Combination
from moee_pipeline.score.embedder import ConfigRows, fit_setting
from moee_pipeline.score.encoder import CachedEncoder, evaluate_split, row_index
from moee_pipeline.tasks.pairs import document_texts
from tests.support.data import retrieval_subset
from tests.support.synthetic import MODEL, PROMPT, write_synthetic_task
from tests.support.vectors import CountingVectors

GROUP, CHUNK = 32, 100
COMBO = Combination("MoEE-sum", weight=1.0)


@pytest.fixture(scope="module")
def scifact(mteb_data: Path, tmp_path_factory: pytest.TempPathFactory) -> AbsTask:
    """SciFact (test): every relevant document and 700 others, all queries."""
    from moee_pipeline.tasks import load_task

    data = retrieval_subset(mteb_data, "SciFact", tmp_path_factory.mktemp("data"), others=700)
    return load_task("SciFact", data_dir=data)


@pytest.mark.integration
def test_a_corpus_scored_in_chunks_from_disk_scores_as_the_matrix_in_memory(
    scifact: AbsTask, tmp_path: Path
) -> None:
    split: Any = scifact.dataset["default"]["test"]  # type: ignore[index]
    queries, docs = list(split["queries"]["text"]), document_texts(split["corpus"])
    texts = list(dict.fromkeys([*queries, *docs]))
    stored = [texts[i] for i in np.random.default_rng(3).permutation(len(texts))]  # not mteb's
    write_synthetic_task(tmp_path, "SciFact", stored, row_group_rows=GROUP)
    reads: list[int] = []
    source = open_source(
        tmp_path, model=MODEL, prompt_id=PROMPT, task="SciFact",
        columns=["hs_last", "rw_last"], observer=reads.append,
    )  # fmt: skip
    index = row_index(source.text_ids)
    chunked = CountingVectors(
        ConfigRows(source, fit_setting(source, COMBO, fit_rows=None, chunk_rows=CHUNK), COMBO)
    )
    reads.clear()
    by_chunks, _ = evaluate_split(
        scifact,
        encoder=CachedEncoder(index=index, embeddings=chunked),
        split="test",
        corpus_chunk_size=CHUNK,
    )
    searched = list(reads)
    held = source.load(["hs_last", "rw_last"])
    whole = ConfigRows(held, fit_setting(held, COMBO, fit_rows=None, chunk_rows=10**6), COMBO)
    matrix = whole.take(np.arange(held.rows))  # today's path: one matrix, mteb's own chunking
    in_memory, _ = evaluate_split(
        scifact, encoder=CachedEncoder(index=index, embeddings=matrix), split="test"
    )
    assert by_chunks.main_score == pytest.approx(in_memory.main_score, abs=1e-6)
    assert 0.0 < in_memory.main_score < 1.0
    n_queries, n_docs = len(split["queries"]), len(docs)
    # queries once, then the corpus chunk by chunk: no lookup beyond the chunk size
    assert chunked.asked[0] == n_queries and max(chunked.asked[1:]) == CHUNK
    assert sum(chunked.asked[1:]) == n_docs
    # one row group at a time, and the corpus in cache order: each group decoded once for the
    # queries and about once for the corpus (twice where two chunks share it), not once per chunk
    assert max(searched) <= GROUP
    groups, chunks = -(-len(texts) // GROUP), -(-n_docs // CHUNK)
    assert len(searched) <= 2 * groups + chunks
