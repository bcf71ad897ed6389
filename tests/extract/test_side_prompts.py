"""Query and document prompts: each side of a retrieval task under its own template is its own
entry of that side's texts; a side whose template a plain run used takes that run's entry as it
is (no second forward pass); completeness and verify judge a side's entry by its side only."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from moee_pipeline.cache import layout, parts, snapshots, store
from moee_pipeline.prompts import resolve_prompt
from tests.support.cli import cli, cli_ok

TASK = "MoeeToyRetrieval"
QUERY_TEMPLATE = "Find documents for: {text}"
QUERY_ID = resolve_prompt(QUERY_TEMPLATE).id


def _entry(cache: Path, model: Path, prompt: str) -> Path:
    return layout.task_dir(cache, model=str(model), prompt_id=prompt, task=TASK)


def _manifest(cache: Path, model: Path, prompt: str) -> dict[str, Any]:
    manifest = store.read_manifest(_entry(cache, model, prompt))
    assert manifest is not None
    return manifest


def _features(cache: Path, model: Path, prompt: str) -> dict[str, np.ndarray]:
    f = store.read_features(cache, model=str(model), prompt_id=prompt, task=TASK,
                            columns=["hs_last"])  # fmt: skip
    return {t: f.arrays["hs_last"][i] for i, t in enumerate(f.text_ids)}


def _sides(cache: Path) -> dict[str, tuple[str, ...]]:
    found = snapshots.read_text_sides(TASK, "test", cache_dir=cache)
    assert found is not None
    return found


def _extract(cache: Path, model: Path, *args: str) -> str:
    return cli_ok("extract", "--model", str(model), "--tasks", TASK, "--cache-dir", str(cache),
                  "--rows-per-shard", "4", *args)  # fmt: skip


@pytest.mark.slow
def test_a_query_only_prompt_adds_the_queries_alone_and_shares_the_documents(
    tiny_model: Callable[[str], Path], tmp_path: Path
) -> None:
    model, cache = tiny_model("olmoe"), tmp_path / "cache"
    _extract(cache, model)  # a plain run: every text under `none`
    plain = _manifest(cache, model, "none")
    out = _extract(cache, model, "--query-prompt", QUERY_TEMPLATE)
    # the documents' side is the plain entry, complete as it is: no second forward pass
    assert f"{TASK} [none]: 31 rows, already complete" in out
    assert _manifest(cache, model, "none") == plain
    sides = _sides(cache)
    queries = {parts.text_id(t) for t, s in sides.items() if "query" in s}
    assert len(queries) == 8
    own = _manifest(cache, model, QUERY_ID)
    assert (own["rows"], own["new_rows"], own["sides"]) == (8, 8, ["query"])
    assert own["side_prompts"] == {"query": QUERY_TEMPLATE, "document": "none"}
    assert set(_features(cache, model, QUERY_ID)) == queries
    # the text that is both a query and a document: two rows, one per template, not equal
    both = [t for t, s in sides.items() if set(s) == {"query", "document"}]
    assert len(both) == 1
    tid = parts.text_id(both[0])
    under_query = _features(cache, model, QUERY_ID)[tid]
    assert not np.allclose(under_query, _features(cache, model, "none")[tid])
    # a rerun finds both sides complete
    again = _extract(cache, model, "--query-prompt", QUERY_TEMPLATE)
    assert f"{TASK} [{QUERY_ID}]: 8 rows, already complete" in again
    ls = cli_ok("ls", "--cache-dir", str(cache))
    assert "incomplete" not in ls and QUERY_ID in ls
    (line,) = [x for x in ls.splitlines() if QUERY_ID in x]
    assert "complete (query side)" in line
    cli_ok("verify", "--cache-dir", str(cache))
    # an --overwrite of both sides rebuilds the plain entry whole: never narrowed to one side
    _extract(cache, model, "--query-prompt", QUERY_TEMPLATE, "--overwrite")
    rebuilt = _manifest(cache, model, "none")
    assert (rebuilt["rows"], rebuilt["new_rows"], "sides" in rebuilt) == (31, 31, False)


@pytest.mark.slow
def test_a_side_entry_that_lost_a_part_is_incomplete_for_its_side_and_completed_alone(
    tiny_model: Callable[[str], Path], tmp_path: Path
) -> None:
    model, cache = tiny_model("olmoe"), tmp_path / "cache"
    two = ("--query-prompt", QUERY_TEMPLATE, "--document-prompt", "prompteol")
    _extract(cache, model, *two)
    docs = _manifest(cache, model, "prompteol")
    assert (docs["rows"], docs["sides"]) == (24, ["document"])
    assert _manifest(cache, model, QUERY_ID)["rows"] == 8
    entry = _entry(cache, model, QUERY_ID)
    manifest = _manifest(cache, model, QUERY_ID)
    lost = sorted(manifest["parts"])[0]  # 4 of the 8 queries
    (entry / lost).unlink()
    del manifest["parts"][lost]
    manifest["rows"] = 4
    store.write_json_atomic(entry / store.MANIFEST, manifest)
    ls = cli_ok("ls", "--cache-dir", str(cache))
    assert "4 of 8 texts missing" in ls  # judged by the queries alone, not all 31 texts
    code, out = cli("verify", "--cache-dir", str(cache))
    assert code != 0
    assert "--query-prompt" in out and "--document-prompt prompteol" in out
    redo = _extract(cache, model, *two)
    assert f"{TASK} [{QUERY_ID}]: 8 rows, 4 new rows" in redo
    assert f"{TASK} [prompteol]: 24 rows, already complete" in redo
    cli_ok("verify", "--cache-dir", str(cache))
    # a plain run of the documents' template extends that entry to every text, never narrows it
    plain = _extract(cache, model, "--prompt", "prompteol")
    assert f"{TASK} [prompteol]: 31 rows, 7 new rows" in plain
    assert "sides" not in _manifest(cache, model, "prompteol")
    cli_ok("verify", "--cache-dir", str(cache))


@pytest.mark.slow
def test_the_ray_engine_makes_the_same_side_entries_as_the_local_one(
    ray_local: object, tiny_model: Callable[[str], Path], tmp_path: Path
) -> None:
    pytest.importorskip("ray")
    model = tiny_model("olmoe")
    made = {}
    for engine in ("local", "ray"):
        cache = tmp_path / engine
        _extract(cache, model, "--engine", engine, "--query-prompt", QUERY_TEMPLATE)
        made[engine] = cache
        assert _manifest(cache, model, QUERY_ID)["sides"] == ["query"]
        assert _manifest(cache, model, "none")["sides"] == ["document"]
        assert _manifest(cache, model, "none")["rows"] == 24
    for prompt in (QUERY_ID, "none"):
        ours, ref = _features(made["ray"], model, prompt), _features(made["local"], model, prompt)
        assert set(ours) == set(ref)
        for tid, value in ref.items():
            np.testing.assert_allclose(ours[tid], value, atol=1e-5, rtol=0)
