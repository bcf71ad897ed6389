"""The part writer's store dtypes, through a real extraction: what is stored, read back and
refused (the formats themselves: tests/cache/test_parts.py)."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
import torch

from moee_pipeline.cache import parts, store
from moee_pipeline.extract.hooks import PooledBatch
from moee_pipeline.extract.settings import DEFAULT_STORE_DTYPE, ExtractionError
from moee_pipeline.extract.writer import PartWriter
from moee_pipeline.models.loading import LoadedModel, ModelSpec, load_model
from tests.extract.test_pipeline import TEXTS, by_id, read, run


@pytest.fixture(scope="module")
def olmoe(tiny_model: Callable[[str], Path]) -> tuple[Path, LoadedModel]:
    path = tiny_model("olmoe")
    return path, load_model(ModelSpec(str(path)))


def test_float16_and_bfloat16_read_back_within_their_rounding_of_float32(
    olmoe: tuple[Path, LoadedModel], tmp_path: Path
) -> None:
    model_dir, loaded = olmoe
    run(loaded, model_dir, tmp_path / "float32")
    full = by_id(read(tmp_path / "float32", model_dir))
    for dtype, value_type in (("float16", "halffloat"), ("bfloat16", "float")):
        summary = run(loaded, model_dir, tmp_path / dtype, store_dtype=dtype)
        features = read(tmp_path / dtype, model_dir)
        assert features.manifest["store_dtype"] == dtype
        for part in parts.part_files(summary.path):
            schema = pq.read_schema(part)
            assert parts.schema_metadata(schema)["store_dtype"] == dtype
            assert {str(schema.field(n).type.value_type) for n in parts.VECTOR_COLUMNS} == {
                value_type
            }
        for tid, row in by_id(features).items():
            for name, got in row.items():
                assert got.dtype == np.float32
                exact = torch.from_numpy(full[tid][name].copy())
                rounded = exact.to(getattr(torch, dtype)).float().numpy()
                np.testing.assert_array_equal(got, rounded, err_msg=f"{dtype} {name}")


def test_another_store_dtype_is_other_settings_unless_overwrite(
    olmoe: tuple[Path, LoadedModel], tmp_path: Path
) -> None:
    model_dir, loaded = olmoe
    first = run(loaded, model_dir, tmp_path)
    fingerprint = store.features_fingerprint(read(tmp_path, model_dir).manifest)
    with pytest.raises(ExtractionError, match=r"other settings.*store_dtype"):
        run(loaded, model_dir, tmp_path, store_dtype="bfloat16")
    assert run(loaded, model_dir, tmp_path).skipped  # float32 is what it was made with
    again = run(loaded, model_dir, tmp_path, store_dtype="bfloat16", overwrite=True)
    assert again.rows == first.rows == len(TEXTS)
    manifest = read(tmp_path, model_dir).manifest
    assert manifest["store_dtype"] == "bfloat16"
    assert store.features_fingerprint(manifest) != fingerprint


def test_without_a_store_dtype_new_entries_get_the_default_and_old_ones_keep_theirs(
    olmoe: tuple[Path, LoadedModel], tmp_path: Path
) -> None:
    model_dir, loaded = olmoe
    assert run(loaded, model_dir, tmp_path / "new", store_dtype=None).rows == len(TEXTS)
    assert read(tmp_path / "new", model_dir).manifest["store_dtype"] == DEFAULT_STORE_DTYPE
    # an entry of another dtype, as one made before the option: float32 without the key
    summary = run(loaded, model_dir, tmp_path / "old", texts=TEXTS[:6])
    for part in parts.part_files(summary.path):  # rewritten without the key, as then
        table = pq.read_table(part)
        meta = parts.schema_metadata(table.schema)
        del meta["store_dtype"]
        pq.write_table(table.replace_schema_metadata({b"moee": json.dumps(meta)}), part)
    (summary.path / store.MANIFEST).unlink()  # an interrupted run, resumed with more texts
    resumed = run(loaded, model_dir, tmp_path / "old", store_dtype=None)
    assert resumed.rows == len(TEXTS) and resumed.new_rows == len(TEXTS) - 6
    features = read(tmp_path / "old", model_dir)
    assert features.manifest["store_dtype"] == "float32"
    assert {parts.schema_metadata(pq.read_schema(p)).get("store_dtype") for p in
            parts.part_files(summary.path)} == {None, "float32"}  # fmt: skip
    assert run(loaded, model_dir, tmp_path / "old", store_dtype=None).skipped
    replaced = run(loaded, model_dir, tmp_path / "old", store_dtype=None, overwrite=True)
    assert replaced.rows == len(TEXTS)
    assert read(tmp_path / "old", model_dir).manifest["store_dtype"] == DEFAULT_STORE_DTYPE


def test_a_feature_beyond_float16s_range_stops_the_run_naming_column_and_text(
    tmp_path: Path,
) -> None:
    meta = {"n_moe_layers": 1, "n_experts": 2, "hidden_size": 3, "store_dtype": "float16"}
    writer = PartWriter(tmp_path, parts.feature_schema(meta), prefix="part", rows=10)
    rw, hs = np.ones((2, 2), np.float32), np.ones((2, 3), np.float32)
    big = hs.copy()
    big[1, 2] = 1e5
    try:
        with pytest.raises(ExtractionError, match=r"hs_mean of 1 text\(s\), e.g. 'second'"):
            writer.add(["first", "second"], [1, 1], [False, False], PooledBatch(rw, rw, hs, big))
    finally:
        writer.close()
    assert parts.part_files(tmp_path) == []  # nothing of the batch was stored
