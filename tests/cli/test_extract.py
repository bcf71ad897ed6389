"""`moee extract` as users run it: options, one-line errors, a real MTEB task from ../shared."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from moee_pipeline.cache import parts, store
from tests.support.cli import cli


def test_help_lists_the_interface() -> None:
    code, out = cli("extract", "--help")
    assert code == 0
    for option in (
        "--model", "--revision", "--tasks", "--task-types", "--prompt", "--quantization",
        "--dtype", "--device", "--batch-size", "--max-batch-tokens", "--max-length",
        "--rows-per-shard", "--data-dir", "--cache-dir", "--shard", "--trust-remote-code",
        "--overwrite",
    ):  # fmt: skip
        assert option in out


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--tasks", "NoSuchTask"], "NoSuchTask"),
        (["--task-types", "Poetry"], "Poetry"),
        (["--prompt", "nonsense"], "unknown prompt"),
        (["--shard", "2/2"], "0 <= I < N"),
    ],
)
def test_bad_input_is_one_clear_line(args: list[str], message: str, tmp_path: Path) -> None:
    code, out = cli("extract", *args, "--cache-dir", str(tmp_path))
    assert code != 0
    assert message in out
    assert "Traceback" not in out


def test_missing_model_offline_is_one_clear_line(tmp_path: Path) -> None:
    code, out = cli(
        "extract", "--model", "nobody/no-such-model", "--tasks", "MoeeToySTS",
        "--cache-dir", str(tmp_path),
    )  # fmt: skip
    assert code != 0
    assert "cannot load model 'nobody/no-such-model'" in out
    assert len(out.strip().splitlines()) == 1


def test_unreadable_data_dir_is_one_clear_line(tmp_path: Path) -> None:
    code, out = cli(
        "extract", "--model", "x", "--tasks", "STS12", "--data-dir", str(tmp_path / "nope"),
        "--cache-dir", str(tmp_path),
    )  # fmt: skip
    assert code != 0
    assert "nope" in out and len(out.strip().splitlines()) == 1


@pytest.mark.slow
@pytest.mark.integration
def test_extracts_a_real_sts_task_from_shared_data(
    tiny_model: Callable[[str], Path], mteb_data: Path, tmp_path: Path
) -> None:
    model = tiny_model("qwen2_moe")
    args = ["--model", str(model), "--tasks", "BIOSSES", "--data-dir", str(mteb_data),
            "--cache-dir", str(tmp_path), "--prompt", "prompteol"]  # fmt: skip
    code, out = cli("extract", *args)
    assert code == 0, out
    assert "BIOSSES [prompteol]" in out and "rows" in out
    pairs = pq.read_table(mteb_data / "BIOSSES" / "test.parquet")
    expected = set(pairs.column("sentence1").to_pylist()) | set(
        pairs.column("sentence2").to_pylist()
    )
    features = store.read_features(
        tmp_path, model=str(model), prompt_id="prompteol", task="BIOSSES"
    )
    assert set(features.text_ids) == {parts.text_id(t) for t in expected}
    assert (tmp_path / "tasks" / "BIOSSES").is_dir()
    code, out = cli("extract", *args)  # rerun: complete tasks are skipped
    assert code == 0 and "already complete" in out
