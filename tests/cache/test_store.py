from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest

from moee_pipeline.cache import layout, parts, store


def test_text_id_is_sha256_of_utf8() -> None:
    assert parts.text_id("café") == hashlib.sha256("café".encode()).hexdigest()


@pytest.mark.parametrize(
    ("model", "slug"),
    [
        ("allenai/OLMoE-1B-7B-0924", "allenai--OLMoE-1B-7B-0924"),
        ("/models/my tiny model", "my_tiny_model"),
        ("./checkpoints/olmoe", "olmoe"),
    ],
)
def test_model_slug(model: str, slug: str) -> None:
    assert layout.model_slug(model) == slug


def test_vectors_round_trip_including_sliced_columns() -> None:
    matrix = np.arange(24, dtype=np.float32).reshape(6, 4)
    column = parts.vector_array(matrix)
    np.testing.assert_array_equal(parts.column_matrix(column), matrix)
    # a slice has an offset: .values would ignore it, flatten() must not
    np.testing.assert_array_equal(parts.column_matrix(column.slice(2, 3)), matrix[2:5])
    chunked = pa.chunked_array([column.slice(0, 2), column.slice(2)])
    np.testing.assert_array_equal(parts.column_matrix(chunked), matrix)


def test_write_part_leaves_no_temp_file_and_records_its_bytes(tmp_path: Path) -> None:
    table = pa.table({"text_id": ["a"], "hs_last": parts.vector_array(np.ones((1, 3)))})
    record = parts.write_part(table, tmp_path / "part-00000.parquet")
    assert [p.name for p in tmp_path.iterdir()] == ["part-00000.parquet"]
    data = (tmp_path / "part-00000.parquet").read_bytes()
    assert record == {"rows": 1, "bytes": len(data), "sha256": hashlib.sha256(data).hexdigest()}
    assert parts.part_record(tmp_path / "part-00000.parquet") == record


def test_read_features_explains_what_to_run(tmp_path: Path) -> None:
    with pytest.raises(store.CacheError, match="not extracted: run `moee extract"):
        store.read_features(tmp_path, model="org/m", prompt_id="none", task="STS12")
    folder = layout.task_dir(tmp_path, model="org/m", prompt_id="none", task="STS12")
    folder.mkdir(parents=True)
    with pytest.raises(store.CacheError, match="incomplete"):
        store.read_features(tmp_path, model="org/m", prompt_id="none", task="STS12")


def test_cache_root_prefers_argument_then_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MOEE_CACHE_DIR", "/elsewhere")
    assert layout.cache_root(None) == Path("/elsewhere")
    assert layout.cache_root("here") == Path("here")
    monkeypatch.delenv("MOEE_CACHE_DIR")
    assert layout.cache_root(None) == Path("cache")
