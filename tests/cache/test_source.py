"""Chunked, memory-mapped reads of an entry (`cache.source`): the rows `read_features` reads,
never decoding more than one row group at a time, refused in its words when damaged."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest

from moee_pipeline.cache import layout, parts, store
from moee_pipeline.cache.errors import CacheError
from moee_pipeline.cache.source import open_source
from tests.support.synthetic import MODEL, PROMPT, write_synthetic_task

COLUMNS = ("hs_last", "rw_last", "hs_mean", "rw_mean")
TEXTS = [f"document {i} about topic {i % 7}" for i in range(103)]


def _entry(root: Path, group: int) -> Path:
    write_synthetic_task(root, "Docs", TEXTS, row_group_rows=group)
    return layout.task_dir(root, model=MODEL, prompt_id=PROMPT, task="Docs")


def test_parts_keep_their_table_in_row_groups(tmp_path: Path) -> None:
    folder = _entry(tmp_path, parts.ROW_GROUP_ROWS)
    write_synthetic_task(tmp_path / "small", "Docs", TEXTS, row_group_rows=10)
    small = layout.task_dir(tmp_path / "small", model=MODEL, prompt_id=PROMPT, task="Docs")
    part = "part-00000.parquet"
    assert pq.read_metadata(folder / part).num_row_groups == 1
    assert pq.read_metadata(small / part).num_row_groups == 11  # 10 x 10 + 3
    # what whole-file readers see does not depend on the row groups
    assert pd.read_parquet(folder / part).equals(pd.read_parquet(small / part))
    assert pq.read_schema(folder / part).equals(pq.read_schema(small / part), check_metadata=True)


def test_reads_give_the_rows_read_features_gives_one_row_group_at_a_time(
    tmp_path: Path,
) -> None:
    _entry(tmp_path, 10)
    whole = store.read_features(
        tmp_path, model=MODEL, prompt_id=PROMPT, task="Docs", columns=COLUMNS
    )
    reads: list[int] = []
    source = open_source(
        tmp_path, model=MODEL, prompt_id=PROMPT, task="Docs", columns=COLUMNS, observer=reads.append
    )
    assert source.text_ids == whole.text_ids and source.rows == len(TEXTS)
    assert not reads  # opening checks the entry without decoding a feature
    rows = np.random.default_rng(0).integers(0, len(TEXTS), 40)  # any order, repeats
    got = source.read(rows, COLUMNS)
    for name in COLUMNS:
        np.testing.assert_array_equal(got[name], whole.arrays[name][rows])
    assert reads and max(reads) <= 10
    assert len(reads) == len(np.unique(rows // 10))  # each group holding a row, once
    reads.clear()
    starts = []
    for start, block in source.chunks(["rw_last"], 25):
        starts.append(start)
        assert len(block["rw_last"]) <= 25
        np.testing.assert_array_equal(block["rw_last"], whole.arrays["rw_last"][start : start + 25])
    assert starts == [0, 25, 50, 75, 100] and max(reads) <= 10
    loaded = source.load(COLUMNS)
    for name in COLUMNS:
        np.testing.assert_array_equal(loaded.read(rows, [name])[name], got[name])


def test_a_damaged_part_is_refused_in_read_features_words(tmp_path: Path) -> None:
    folder = _entry(tmp_path, 10)
    part = folder / "part-00000.parquet"
    store.write_json_atomic(
        folder / store.MANIFEST,
        {**store.read_manifest(folder), "parts": {part.name: parts.part_record(part)}},  # type: ignore[dict-item]
    )
    data = bytearray(part.read_bytes())
    data[len(data) // 2] ^= 0xFF
    part.write_bytes(bytes(data))
    with pytest.raises(CacheError) as whole:
        store.read_features(tmp_path, model=MODEL, prompt_id=PROMPT, task="Docs")
    with pytest.raises(CacheError) as chunked:
        open_source(tmp_path, model=MODEL, prompt_id=PROMPT, task="Docs", columns=COLUMNS)
    assert str(chunked.value) == str(whole.value)
    assert "does not match its SHA-256" in str(chunked.value)
