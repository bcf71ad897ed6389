"""A corpus two tasks share is extracted once: the second task copies the first one's rows of
the shared texts (same model, prompt and settings), and they equal an extraction of its own."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from moee_pipeline.cache import layout, parts, store
from tests.support.cli import cli_ok
from tests.support.scores import read_scores

FIRST, SECOND = "MoeeToyRetrieval", "MoeeToyRetrievalShared"


def _rows(cache: Path, model: Path, task: str) -> dict[str, dict[str, np.ndarray]]:
    f = store.read_features(
        cache, model=str(model), prompt_id="none", task=task, columns=parts.VECTOR_COLUMNS
    )
    assert len(f.text_ids) == len(set(f.text_ids)), "a text is stored twice"
    return {t: {k: v[i] for k, v in f.arrays.items()} for i, t in enumerate(f.text_ids)}


def _manifest(cache: Path, model: Path, task: str) -> dict:
    entry = layout.task_dir(cache, model=str(model), prompt_id="none", task=task)
    manifest = store.read_manifest(entry)
    assert manifest is not None
    return manifest


@pytest.mark.slow
def test_a_shared_corpus_is_extracted_once_and_equals_its_own_extraction(
    tiny_model: Callable[[str], Path], tmp_path: Path
) -> None:
    model = tiny_model("olmoe")
    cache, alone = tmp_path / "cache", tmp_path / "alone"
    out = cli_ok("extract", "--model", str(model), "--tasks", f"{FIRST},{SECOND}",
                 "--cache-dir", str(cache))  # fmt: skip
    first, second = _manifest(cache, model, FIRST), _manifest(cache, model, SECOND)
    assert (first["rows"], first["copied_rows"]) == (31, 0)
    # 24 documents (one also a query of both tasks) come from the first entry: 7 own queries
    assert (second["rows"], second["new_rows"], second["copied_rows"]) == (31, 7, 24)
    assert f"{SECOND} [none]: 31 rows, 7 new rows in" in out
    assert "24 copied from other tasks' entries" in out
    cli_ok("extract", "--model", str(model), "--tasks", SECOND, "--cache-dir", str(alone))
    assert _manifest(alone, model, SECOND)["copied_rows"] == 0
    copied, own = _rows(cache, model, SECOND), _rows(alone, model, SECOND)
    assert set(copied) == set(own)
    for tid, row in own.items():
        for name, value in row.items():
            np.testing.assert_allclose(copied[tid][name], value, atol=1e-5, rtol=0)
    cli_ok("verify", "--cache-dir", str(cache))  # the copied parts are the entry's own
    results = tmp_path / "results"
    cli_ok("score", "--model", str(model), "--cache-dir", str(cache), "--output", str(results),
           "--method", "HS", "--method", "RW")  # fmt: skip
    assert {(r["task"], r["method"]) for r in read_scores(results)} == {
        (t, m) for t in (FIRST, SECOND) for m in ("HS", "RW")
    }
