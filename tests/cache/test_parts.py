"""The part format's store dtypes: what float16 and bfloat16 keep, and what they refuse."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest
import torch

from moee_pipeline.cache import parts, store
from moee_pipeline.cache.errors import FileProblem
from moee_pipeline.vocabulary import STORE_DTYPES, StoreDtype

META = {"n_moe_layers": 2, "n_experts": 3, "hidden_size": 4}


def values(rows: int = 50) -> np.ndarray:
    """Values of every magnitude the features have, signs, zeros, subnormal-small ones."""
    rng = np.random.default_rng(0)
    scale = np.float32(10.0) ** rng.integers(-8, 4, size=(rows, 6)).astype(np.float32)
    x = rng.standard_normal((rows, 6)).astype(np.float32) * scale
    x[0, :] = [0.0, -0.0, 1.0, -65504.0, 1e-30, 3.0e38]
    return x


def test_bfloat16_rounding_equals_torch() -> None:
    x = values()
    expected = torch.from_numpy(x).to(torch.bfloat16).to(torch.float32).numpy()
    np.testing.assert_array_equal(parts.round_bfloat16(x), expected)
    # ties go to even: 1 + 2^-8 lies halfway between 1 and 1 + 2^-7
    tie = np.array([1 + 2**-8, 1 + 3 * 2**-8], dtype=np.float32)
    np.testing.assert_array_equal(parts.round_bfloat16(tie), [1.0, 1 + 2**-6])


@pytest.mark.parametrize("dtype", STORE_DTYPES)
def test_each_dtype_reads_back_as_float32_within_its_rounding(dtype: StoreDtype) -> None:
    x = values()
    if dtype == "float16":
        x = np.clip(x, -65504, 65504)
    column = parts.vector_array(x, dtype)
    assert column.type.value_type == parts.VALUE_TYPES[dtype]
    back = parts.column_matrix(column)
    assert back.dtype == np.float32
    # an independent rounding of the same values: numpy's float16, torch's bfloat16
    if dtype == "float16":
        exact = x.astype(np.float16).astype(np.float32)
    elif dtype == "bfloat16":
        exact = torch.from_numpy(x).to(torch.bfloat16).float().numpy()
    else:
        exact = x
    np.testing.assert_array_equal(back, exact)
    bits = {"float32": 24, "float16": 11, "bfloat16": 8}[dtype]
    tiny = {"float32": 0.0, "float16": 2.0**-24, "bfloat16": 0.0}[dtype]  # float16 subnormals
    assert (np.abs(back - x) <= np.abs(x) * 2.0**-bits + tiny).all()


def test_values_beyond_a_dtypes_range_are_refused_not_made_inf() -> None:
    big = np.array([[1.0, 70000.0], [2.0, 3.0]], dtype=np.float32)
    assert parts.overflow_rows(big, "float16").tolist() == [True, False]
    with pytest.raises(ValueError, match=r"1 row\(s\) hold values beyond float16's range"):
        parts.vector_array(big, "float16")
    assert not parts.overflow_rows(big, "bfloat16").any()
    huge = np.array([[3.4e38]], dtype=np.float32)  # rounds past bfloat16's largest
    assert parts.overflow_rows(huge, "bfloat16").tolist() == [True]
    assert not parts.overflow_rows(huge, "float32").any()
    # 65504 itself, and what rounds down to it, fit
    assert not parts.overflow_rows(np.array([[65504.0, 65519.0]], np.float32), "float16").any()


def write(path: Path, dtype: StoreDtype, x: np.ndarray) -> Path:
    """A part of `dtype` whose RW columns hold `x` (6 wide) and HS columns its first 4 columns."""
    schema = parts.feature_schema({**META, "store_dtype": dtype})
    texts = [str(i) for i in range(len(x))]
    vectors = [
        parts.vector_array(x if name.startswith("rw") else x[:, :4], dtype)
        for name in parts.VECTOR_COLUMNS
    ]
    ids = [parts.text_id(t) for t in texts]
    table = pa.table([ids, texts, [1] * len(x), [False] * len(x), *vectors], schema=schema)
    parts.write_part(table, path)
    return path


def test_a_part_of_another_dtype_than_its_entry_is_refused(tmp_path: Path) -> None:
    x = np.clip(values(8), -1e4, 1e4)
    half = write(tmp_path / "part-00000.parquet", "float16", x)
    table = parts.read_part(half, None, meta={**META, "store_dtype": "float16"})
    assert table.schema.field("hs_last").type.value_type == pa.float16()
    for entry in ({**META}, {**META, "store_dtype": "bfloat16"}):  # no key: float32
        with pytest.raises(FileProblem, match="holds float16 features, the rest of its entry"):
            parts.read_part(half, None, meta=entry)
    with pytest.raises(FileProblem, match="unknown store dtype 'float8'"):
        parts.read_part(half, None, meta={**META, "store_dtype": "float8"})


def test_audit_finds_bfloat16_parts_holding_other_values(tmp_path: Path) -> None:
    x = values(8)
    good = write(tmp_path / "part-00000.parquet", "bfloat16", x)
    assert parts.audit_part(parts.read_part(good, None)) == []
    # a float32 part relabelled bfloat16: its values keep their low bits
    schema = parts.feature_schema({**META, "store_dtype": "bfloat16"})
    table = parts.read_part(write(tmp_path / "part-00001.parquet", "float32", x), None)
    problems = parts.audit_part(table.replace_schema_metadata(schema.metadata))
    assert problems and all("not bfloat16" in p for p in problems)


def test_float32_keeps_the_fingerprint_of_manifests_from_before_store_dtypes() -> None:
    old = {"model": "org/m", "revision": "r", "dtype": "float32", "max_length": 512}
    fingerprint = store.features_fingerprint(old)
    assert store.features_fingerprint({**old, "store_dtype": "float32"}) == fingerprint
    others = {store.features_fingerprint({**old, "store_dtype": d}) for d in STORE_DTYPES}
    assert len(others) == 3
    assert store.feature_setting(old, "store_dtype") == "float32"
