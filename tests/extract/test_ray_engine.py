"""The Ray engine against the local one: same rows, same features, and faults that lose nothing."""

from __future__ import annotations

import dataclasses
import os
import re
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner

from moee_pipeline.cache import layout, parts, store
from moee_pipeline.cli import main
from moee_pipeline.extract.run import run_extract
from moee_pipeline.extract.settings import ExtractOptions, TaskSummary
from moee_pipeline.models.loading import ModelSpec
from moee_pipeline.prompts import resolve_prompt
from tests.support.cli import cli
from tests.support.trees import unchanged

pytest.importorskip("ray")

TASK = "MoeeToySTS"
PROMPT = resolve_prompt("prompteol")


def _options(cache: Path) -> ExtractOptions:
    return ExtractOptions(
        cache_dir=cache, batch_size=4, max_batch_tokens=120, rows_per_shard=5, progress=False
    )


def _extract_ray(model: Path, cache: Path, **kwargs: Any) -> list[TaskSummary]:
    from moee_pipeline.extract.engine import ExtractRequest, RayOptions
    from moee_pipeline.extract.ray_actor import FeatureExtractor
    from moee_pipeline.extract.ray_engine import RayEngine

    extractor = kwargs.pop("extractor", FeatureExtractor)
    options = dataclasses.replace(_options(cache), overwrite=kwargs.pop("overwrite", False))
    engine = RayEngine(RayOptions(workers=2, block_rows=8, **kwargs), extractor=extractor)
    request = ExtractRequest(
        ModelSpec(model=str(model)), tasks=[TASK], prompts=[PROMPT], options=options
    )
    return list(engine.run(request))


def _features(cache: Path, model: Path, task: str = TASK) -> dict[str, dict[str, np.ndarray]]:
    f = store.read_features(
        cache, model=str(model), prompt_id=PROMPT.id, task=task, columns=parts.VECTOR_COLUMNS
    )
    assert len(f.text_ids) == len(set(f.text_ids)), "a text is stored twice"
    return {t: {k: v[i] for k, v in f.arrays.items()} for i, t in enumerate(f.text_ids)}


@pytest.fixture(scope="module")
def model(tiny_model: Callable[[str], Path]) -> Path:
    return tiny_model("olmoe")


@pytest.fixture(scope="module")
def local_cache(model: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """The reference: the local engine's cache of the same task (read only)."""
    cache = tmp_path_factory.mktemp("local")
    list(
        run_extract(
            ModelSpec(model=str(model)), tasks=[TASK], prompts=[PROMPT], options=_options(cache)
        )
    )
    with unchanged(cache, "the local engine's reference cache"):
        yield cache


def _assert_same_as_local(cache: Path, local_cache: Path, model: Path) -> None:
    ours, ref = _features(cache, model), _features(local_cache, model)
    assert set(ours) == set(ref)
    for tid, row in ref.items():
        for name, value in row.items():
            np.testing.assert_allclose(ours[tid][name], value, atol=1e-5, rtol=0)
    local = pq.read_schema(parts.part_files(_dir(local_cache, model))[0])
    ray = pq.read_schema(parts.part_files(_dir(cache, model))[0])
    assert ray.equals(local, check_metadata=False)
    assert parts.schema_metadata(ray)["n_experts"] == parts.schema_metadata(local)["n_experts"]


def _dir(cache: Path, model: Path) -> Path:
    return layout.task_dir(cache, model=str(model), prompt_id=PROMPT.id, task=TASK)


@pytest.mark.slow
def test_two_workers_give_the_local_rows_and_features(
    ray_local: object, model: Path, local_cache: Path, tmp_path: Path
) -> None:
    cache = tmp_path / "cache"
    code = CliRunner().invoke(
        main,
        ["extract", "--engine", "ray", "--workers", "2", "--model", str(model), "--tasks", TASK,
         "--prompt", "prompteol", "--batch-size", "4", "--max-batch-tokens", "120",
         "--rows-per-shard", "5", "--cache-dir", str(cache)],
    )  # fmt: skip
    assert code.exit_code == 0, code.output
    _assert_same_as_local(cache, local_cache, model)
    manifest = store.read_manifest(_dir(cache, model))
    assert manifest is not None
    assert (manifest["engine"], manifest["workers"]) == ("ray", 2)
    assert manifest["rows"] == len(_features(local_cache, model))
    reference = store.read_manifest(_dir(local_cache, model))
    assert reference is not None and reference["engine"] == "local"
    assert manifest["tokens"] == reference["tokens"]
    # a rerun finds it complete and extracts nothing
    again = CliRunner().invoke(
        main, ["extract", "--engine", "ray", "--model", str(model), "--tasks", TASK,
               "--prompt", "prompteol", "--cache-dir", str(cache)],
    )  # fmt: skip
    assert again.exit_code == 0 and "already complete" in again.output


@pytest.mark.slow
def test_a_retrieval_corpus_on_two_workers_gives_the_local_rows_features_and_cuts(
    ray_local: object, model: Path, tmp_path: Path
) -> None:
    """Queries and long-enough documents (cut at 40 tokens) through both engines alike."""
    task = "MoeeToyRetrieval"
    common = ["--model", str(model), "--tasks", task, "--prompt", "prompteol",
              "--max-length", "40", "--batch-size", "4", "--max-batch-tokens", "120",
              "--rows-per-shard", "7"]  # fmt: skip
    runs = {}
    for engine, extra in (("local", []), ("ray", ["--workers", "2"])):
        cache = tmp_path / engine
        done = CliRunner().invoke(
            main, ["extract", "--engine", engine, *extra, *common, "--cache-dir", str(cache)]
        )
        assert done.exit_code == 0, done.output
        entry = layout.task_dir(cache, model=str(model), prompt_id=PROMPT.id, task=task)
        manifest = store.read_manifest(entry)
        assert manifest is not None and manifest["engine"] == engine
        runs[engine] = (cache, manifest, done.output)
    (local, local_manifest, local_out), (ray, ray_manifest, ray_out) = runs.values()
    ours, ref = _features(ray, model, task), _features(local, model, task)
    assert set(ours) == set(ref) and len(ref) == 31  # 8 queries + 24 documents, one both
    for tid, row in ref.items():
        for name, value in row.items():
            np.testing.assert_allclose(ours[tid][name], value, atol=1e-5, rtol=0)
    assert ray_manifest["tokens"] == local_manifest["tokens"]
    assert ray_manifest["truncated"] == local_manifest["truncated"] > 0
    cut = f"{local_manifest['truncated']} cut to --max-length"
    assert cut in local_out and cut in ray_out


@pytest.mark.slow
def test_a_worker_killed_mid_run_is_restarted_and_nothing_is_lost(
    ray_local: object, model: Path, local_cache: Path, tmp_path: Path
) -> None:
    from tests.support.ray_faults import dying_extractor

    markers = tmp_path / "markers"
    markers.mkdir()
    cache = tmp_path / "cache"
    (summary,) = _extract_ray(model, cache, extractor=dying_extractor(markers))
    assert (markers / "died").exists()  # a worker process really died mid-run
    assert summary.new_rows == summary.rows
    _assert_same_as_local(cache, local_cache, model)


@pytest.mark.slow
def test_a_failed_run_keeps_its_parts_and_a_rerun_extracts_only_the_rest(
    ray_local: object, model: Path, local_cache: Path, tmp_path: Path
) -> None:
    from tests.support.ray_faults import failing_extractor

    cache = tmp_path / "cache"
    directory = _dir(cache, model)
    with pytest.raises(Exception, match="injected failure"):
        _extract_ray(model, cache, extractor=failing_extractor(directory))
    assert store.read_manifest(directory) is None  # not marked complete
    kept = store.existing_text_ids(directory)
    assert kept  # the blocks that came back before the failure are on disk
    (summary,) = _extract_ray(model, cache)
    total = len(_features(local_cache, model))
    assert summary.new_rows == total - len(kept)
    _assert_same_as_local(cache, local_cache, model)


@pytest.mark.slow
def test_a_failed_overwrite_on_ray_keeps_the_old_entry_and_a_rerun_replaces_it(
    ray_local: object, model: Path, local_cache: Path, tmp_path: Path
) -> None:
    from tests.support.ray_faults import failing_extractor

    cache = tmp_path / "cache"
    _extract_ray(model, cache)
    directory = _dir(cache, model)
    before = {p.name: p.read_bytes() for p in directory.iterdir()}
    key = layout.EntryKey.from_path(directory)
    build = layout.staged_dir(cache, key, shard=(0, 1), pid=os.getpid())  # this driver's
    with pytest.raises(Exception, match="injected failure"):
        _extract_ray(model, cache, extractor=failing_extractor(build), overwrite=True)
    assert {p.name: p.read_bytes() for p in directory.iterdir()} == before
    assert not build.exists() and not (cache / layout.STAGING).exists()
    (summary,) = _extract_ray(model, cache, overwrite=True)
    assert summary.new_rows == summary.rows == len(_features(local_cache, model))
    assert {p.name: p.read_bytes() for p in directory.iterdir()} != before
    assert not (cache / layout.STAGING).exists()
    _assert_same_as_local(cache, local_cache, model)


def test_without_ray_installed_one_line_says_how(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setitem(sys.modules, "ray", None)  # import ray -> ImportError
    for command in (
        ["extract", "--engine", "ray", "--tasks", TASK],
        ["score", "--engine", "ray", "--tasks", TASK],
    ):
        code, out = cli(*command, "--model", "x", "--cache-dir", str(tmp_path))
        assert code != 0
        assert "pip install -e .[ray]" in out
        assert len(out.strip().splitlines()) == 1, out


def test_unreachable_ray_address_is_one_line(tmp_path: Path, model: Path) -> None:
    # a process of its own, as a user runs it: no Ray instance of this session is around
    done = subprocess.run(
        [sys.executable, "-m", "moee_pipeline", "extract", "--engine", "ray",
         "--ray-address", "127.0.0.1:1", "--model", str(model), "--tasks", TASK,
         "--cache-dir", str(tmp_path)],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    out = done.stdout + done.stderr
    assert done.returncode != 0
    assert "cannot reach the Ray cluster at '127.0.0.1:1'" in out
    assert "Traceback" not in out and len(out.strip().splitlines()) == 1, out


def test_unreachable_address_fails_before_any_task_loads(tmp_path: Path) -> None:
    from moee_pipeline.extract.engine import ExtractRequest, RayOptions, engine_named
    from moee_pipeline.extract.ray_engine import RayEngine
    from moee_pipeline.ray_cluster import RayClusterError

    request = ExtractRequest(
        ModelSpec(model=str(tmp_path / "none")),
        tasks=["NoSuchTask"],  # had it been loaded, the error would name it
        prompts=[PROMPT],
        options=_options(tmp_path),
    )
    message = re.escape("cannot reach the Ray cluster at '127.0.0.1:1'")
    with pytest.raises(RayClusterError, match=message):
        next(iter(RayEngine(RayOptions(address="127.0.0.1:1")).run(request)))
    with pytest.raises(RayClusterError, match=message):  # chosen by name: refused at once
        engine_named("ray", RayOptions(address="127.0.0.1:1"))


@pytest.mark.slow
def test_more_gpus_per_worker_than_the_cluster_has_is_refused_before_loading(
    ray_local: object, tmp_path: Path
) -> None:
    # the model does not exist: had anything loaded, the error would say so
    code, out = cli(
        "extract", "--engine", "ray", "--gpus-per-worker", "1", "--model", str(tmp_path / "none"),
        "--tasks", TASK, "--cache-dir", str(tmp_path),
    )  # fmt: skip
    assert code != 0
    assert "--gpus-per-worker 1 is more than any node of the Ray cluster has" in out
    assert len(out.strip().splitlines()) == 1


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--workers", "2"], "need --engine ray"),
        (["--ray-address", "auto"], "need --engine ray"),
        (["--engine", "ray", "--shard", "0/2"], "leave it at 0/1"),
    ],
)
def test_engine_options_without_ray_engine_are_refused(
    args: list[str], message: str, tmp_path: Path
) -> None:
    code, out = cli("extract", *args, "--tasks", TASK, "--cache-dir", str(tmp_path))
    assert code != 0
    assert message in out
    assert "Traceback" not in out


@pytest.mark.slow
def test_scoring_and_the_local_engine_never_import_ray() -> None:
    code = (
        "import sys, moee_pipeline.score.run, moee_pipeline.score.parallel, "
        "moee_pipeline.extract.pipeline, moee_pipeline.cli; "
        "assert 'ray' not in sys.modules, 'ray imported'"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-2000:]


def test_gpus_per_worker_default_and_refusals() -> None:
    from moee_pipeline.ray_cluster import ClusterResources, RayClusterError, resolve_gpus_per_worker

    two_nodes = ClusterResources(cpus=64, gpus=8, max_gpus_per_node=4)
    cpu_only = ClusterResources(cpus=8, gpus=0, max_gpus_per_node=0)
    assert resolve_gpus_per_worker(None, workers=8, resources=two_nodes) == 1
    assert resolve_gpus_per_worker(None, workers=3, resources=cpu_only) == 0
    assert resolve_gpus_per_worker(4, workers=2, resources=two_nodes) == 4
    with pytest.raises(RayClusterError, match="more than any node"):
        resolve_gpus_per_worker(8, workers=1, resources=two_nodes)  # 8 in all, 4 per node
    with pytest.raises(RayClusterError, match="lower --workers"):
        resolve_gpus_per_worker(2, workers=5, resources=two_nodes)


def test_workers_settings_do_not_depend_on_the_drivers_devices() -> None:
    from moee_pipeline.extract.ray_engine import _for_workers

    gpu = _for_workers(ModelSpec(model="m"), 1)
    assert (gpu.resolved_quantization(), gpu.resolved_dtype()) == ("nf4", "bfloat16")
    assert _for_workers(ModelSpec(model="m", quantization="none"), 1).quantization == "none"
    cpu = _for_workers(ModelSpec(model="m"), 0)
    assert (cpu.device, cpu.resolved_quantization(), cpu.resolved_dtype()) == (
        "cpu",
        "none",
        "float32",
    )


@pytest.mark.slow
def test_ray_engine_refuses_an_entry_another_extraction_is_writing(
    model: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from moee_pipeline.extract import ray_engine
    from moee_pipeline.extract.entries import entry_lock
    from moee_pipeline.extract.settings import ExtractionError

    def no_ray(address: str | None = None) -> object:
        raise AssertionError("Ray started although the entry is locked")

    monkeypatch.setattr(ray_engine, "ray_session", no_ray)
    cache = tmp_path / "cache"
    directory = layout.task_dir(cache, model=str(model), prompt_id=PROMPT.id, task=TASK)
    with entry_lock(directory, shard=(0, 1)), pytest.raises(ExtractionError, match="another"):
        _extract_ray(model, cache)
    assert not directory.exists() or not parts.part_files(directory)
