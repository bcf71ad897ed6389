"""`moee extract` as users run it: options, one-line errors, a real MTEB task from ../shared."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from moee_pipeline.cache import layout, parts, store
from tests.support.cli import cli, cli_ok


def test_help_lists_the_interface() -> None:
    code, out = cli("extract", "--help")
    assert code == 0
    for option in (
        "--model", "--revision", "--tasks", "--task-types", "--prompt", "--quantization",
        "--dtype", "--device", "--batch-size", "--max-batch-tokens", "--max-length",
        "--rows-per-shard", "--data-dir", "--cache-dir", "--shard", "--trust-remote-code",
        "--overwrite", "--store-dtype",
    ):  # fmt: skip
        assert option in out


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--tasks", "NoSuchTask"], "NoSuchTask"),
        (["--task-types", "Poetry"], "Poetry"),
        (["--prompt", "nonsense"], "unknown prompt"),
        (["--shard", "2/2"], "0 <= I < N"),
        (["--tasks", ""], "Invalid value for '--tasks': '' names nothing"),
        (["--tasks", ","], "Invalid value for '--tasks': ',' names nothing"),
        (["--task-types", " "], "Invalid value for '--task-types': ' ' names nothing"),
        (["--splits", ","], "Invalid value for '--splits': ',' names nothing"),
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


@pytest.mark.slow
def test_two_local_models_whose_names_slug_alike_keep_their_own_entries(
    tiny_model: Callable[[str], Path], tmp_path: Path
) -> None:
    """`tiny olmoe ü` and `tiny olmoe ö` once shared `tiny_olmoe__`: ö read ü's features."""
    cache = tmp_path / "cache"
    u, o = tmp_path / "tiny olmoe ü", tmp_path / "tiny olmoe ö"
    for folder in (u, o):
        shutil.copytree(tiny_model("olmoe"), folder)
    base = ["--tasks", "MoeeToySTS", "--cache-dir", str(cache)]
    code, out = cli("extract", "--model", str(u), *base)
    assert code == 0, out
    with pytest.raises(store.CacheError, match="is not extracted"):
        store.read_features(cache, model=str(o), prompt_id="none", task="MoeeToySTS")
    score = ["score", "--model", str(o), "--cache-dir", str(cache), "--method", "RW"]
    code, out = cli(*score, "--output", str(tmp_path / "r"))
    assert code != 0 and "no complete cached tasks" in out, out
    assert not (tmp_path / "r" / "scores.csv").exists()  # no row labelled ö with ü's score
    code, out = cli("extract", "--model", str(o), *base)
    assert code == 0 and "already complete" not in out, out
    slugs = {layout.model_slug(str(m)) for m in (u, o)}
    assert {e.model_slug for e in store.list_cached(cache)} == slugs and len(slugs) == 2
    for folder in (u, o):  # by path, by folder name (another machine) and by slug
        for name in (str(folder), folder.name, layout.model_slug(str(folder))):
            found = store.read_features(cache, model=name, prompt_id="none", task="MoeeToySTS")
            assert found.manifest["model"] == str(folder)


def toy_args(toy_cache: tuple[Path, Path], tmp_path: Path) -> list[str]:
    """Extract arguments for the toy task into a private copy of the toy cache."""
    model, reference = toy_cache
    shutil.copytree(reference, tmp_path / "cache")
    return ["--model", str(model), "--tasks", "MoeeToySTS", "--cache-dir", str(tmp_path / "cache")]


@pytest.mark.slow
def test_a_template_in_whitespace_is_the_prompt_it_renders_as(
    toy_cache: tuple[Path, Path], tmp_path: Path
) -> None:
    args = toy_args(toy_cache, tmp_path)
    code, out = cli("extract", *args, "--prompt", ' "{text}"\n')
    assert code == 0 and "MoeeToySTS [none]" in out and "already complete" in out, out
    assert [e.prompt_id for e in store.list_cached(tmp_path / "cache")] == ["none"]  # one entry


@pytest.mark.slow
def test_a_custom_prompt_is_found_again_by_its_cache_id(
    toy_cache: tuple[Path, Path], tmp_path: Path
) -> None:
    """The id extract prints (and the commands verify and score suggest) names the template."""
    from moee_pipeline.prompts import resolve_prompt

    args = toy_args(toy_cache, tmp_path)
    template = "Text: {text} Meaning:"
    code, out = cli("extract", *args, "--prompt", template)
    assert code == 0, out
    cache_id = resolve_prompt(template).id
    code, out = cli("extract", *args, "--prompt", cache_id)
    assert code == 0 and f"MoeeToySTS [{cache_id}]" in out and "already complete" in out, out
    code, out = cli("extract", *args, "--prompt", "custom-00000000")
    assert code != 0 and "unknown prompt 'custom-00000000'" in out and "Traceback" not in out


@pytest.mark.slow
def test_store_dtype_from_extract_to_verify_and_scores(
    toy_cache: tuple[Path, Path], tmp_path: Path
) -> None:
    """The toy cache is stored as the default, bfloat16: a float32 rerun is other settings,
    --overwrite makes it; verify passes both and their scores keep their own features
    fingerprints, close to each other."""
    from tests.support.scores import read_scores

    args = toy_args(toy_cache, tmp_path)
    assert "already complete" in cli_ok("extract", *args)  # no option: the entry's own dtype
    code, out = cli("extract", *args, "--store-dtype", "float32")
    assert code != 0 and "other settings" in out and "store_dtype" in out, out
    score = ["score", *args, "--method", "HS", "--method", "RW"]
    assert "no problems" in cli_ok("verify", "--cache-dir", str(tmp_path / "cache"))
    cli_ok(*score, "--output", str(tmp_path / "bfloat16"))
    cli_ok("extract", *args, "--store-dtype", "float32", "--overwrite")
    assert "no problems" in cli_ok("verify", "--cache-dir", str(tmp_path / "cache"))
    cli_ok(*score, "--output", str(tmp_path / "float32"))
    before, after = (read_scores(tmp_path / name) for name in ("float32", "bfloat16"))
    assert len(before) == len(after) == 2
    for old, new in zip(before, after, strict=True):
        assert old["method"] == new["method"] and old["features"] != new["features"]
        assert abs(float(old["main_score"]) - float(new["main_score"])) < 0.05
