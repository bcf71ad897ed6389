from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest

from moee_pipeline.cache import layout, parts, store


def test_text_id_is_sha256_of_utf8() -> None:
    assert parts.text_id("café") == hashlib.sha256("café".encode()).hexdigest()


def _sha8(name: str) -> str:
    return hashlib.sha256(name.encode("utf-8")).hexdigest()[:8]


@pytest.mark.parametrize(
    ("model", "slug"),
    [
        ("allenai/OLMoE-1B-7B-0924", "allenai--OLMoE-1B-7B-0924"),
        ("Qwen/Qwen1.5-MoE-A2.7B", "Qwen--Qwen1.5-MoE-A2.7B"),
        ("deepseek-ai/deepseek-moe-16b-base", "deepseek-ai--deepseek-moe-16b-base"),
        # a name whose characters had to be replaced carries a hash of the name itself
        ("/models/my tiny model", f"my_tiny_model-{_sha8('my tiny model')}"),
        ("/models/tiny olmoe ü", f"tiny_olmoe__-{_sha8('tiny olmoe ü')}"),
        ("./checkpoints/olmoe", "olmoe"),
    ],
)
def test_model_slug(model: str, slug: str) -> None:
    assert layout.model_slug(model) == slug
    assert layout.model_slug(slug) == slug  # `--model <slug>` names the same folder


def test_names_that_were_replaced_differently_never_share_a_slug() -> None:
    names = ["tiny olmoe ü", "tiny olmoe ö", "tiny olmoe _", "tiny_olmoe__", "tiny olmoe  "]
    slugs = {layout.model_slug(f"/models/{n}") for n in names}
    assert len(slugs) == len(names)
    assert "tiny_olmoe__" in slugs  # a name that is path-safe already keeps it
    # the folder's name, not its path, makes the slug: another machine finds the entries
    assert layout.model_slug("/a/tiny olmoe ü") == layout.model_slug("/b/tiny olmoe ü")
    assert layout.model_slug("tiny olmoe ü") == layout.model_slug("/b/tiny olmoe ü")


def test_a_name_names_its_model_only() -> None:
    assert layout.names_model("/x/tiny olmoe ü", "/y/tiny olmoe ü")
    assert layout.names_model(layout.model_slug("/y/tiny olmoe ü"), "/y/tiny olmoe ü")
    assert not layout.names_model("/x/tiny olmoe ö", "/y/tiny olmoe ü")
    # a Hub id and a local folder spelled like its slug share a folder, not a name
    assert layout.model_slug("org/tiny") == layout.model_slug("/models/org--tiny")
    assert not layout.names_model("org/tiny", "/models/org--tiny")
    assert layout.names_model("org/tiny", "org/tiny")


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
