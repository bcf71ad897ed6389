"""`moee verify` and checked reads: damage is found by bytes, named in one line, repaired."""

from __future__ import annotations

import json
import shlex
import shutil
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from moee_pipeline.cache import layout, parts, store, verify
from moee_pipeline.cache.errors import REPAIR_HINT, FileProblem
from tests.support.cli import cli
from tests.support.scores import read_scores

TASK = "MoeeToySTS"


@pytest.fixture
def cache(toy_cache: tuple[Path, Path]) -> tuple[Path, Path, Path]:
    """(model, this test's copy of the toy cache, the toy entry's folder in it)."""
    model, copy = toy_cache
    return model, copy, layout.task_dir(copy, model=str(model), prompt_id="none", task=TASK)


def read(model: Path, cache: Path) -> store.Features:
    return store.read_features(cache, model=str(model), prompt_id="none", task=TASK)


def flip_byte_in_column(part: Path, column: str) -> None:
    """Flip one bit in the middle of a column chunk's data (pyarrow may still decode it)."""
    meta = pq.read_metadata(part)
    names = [meta.schema.column(i).path for i in range(meta.num_columns)]
    chunk = meta.row_group(0).column(names.index(f"{column}.list.element"))
    data = bytearray(part.read_bytes())
    data[chunk.data_page_offset + chunk.total_compressed_size // 2] ^= 0x10
    part.write_bytes(bytes(data))


def score_rows(model: Path, cache: Path, out: Path) -> tuple[int, str]:
    args = ["score", "--model", str(model), "--cache-dir", str(cache), "--output", str(out)]
    return cli(*args, "--method", "RW", "--method", "MoEE-sum")


def test_a_clean_cache_verifies(cache: tuple[Path, Path, Path]) -> None:
    _, root, folder = cache
    code, out = cli("verify", "--cache-dir", str(root))
    assert code == 0, out
    assert "1 entries, 5 parts, 1 task snapshots checked: no problems" in out
    manifest = store.read_manifest(folder)
    assert manifest is not None
    assert sorted(manifest["parts"]) == [p.name for p in parts.part_files(folder)]


@pytest.mark.slow
def test_flipped_byte_is_found_by_verify_and_score_then_repaired(
    cache: tuple[Path, Path, Path], tmp_path: Path
) -> None:
    model, root, folder = cache
    code, _ = score_rows(model, root, tmp_path / "before")
    assert code == 0
    part = folder / "part-00002.parquet"
    flip_byte_in_column(part, "rw_last")
    code, out = score_rows(model, root, tmp_path / "after")
    assert code != 0 and "Traceback" not in out
    assert str(part) in out and "SHA-256" in out and "moee verify --repair" in out
    assert not (tmp_path / "after" / "scores.csv").exists()  # never a partial evaluation
    with pytest.raises(store.CacheError, match="SHA-256"):
        read(model, root)
    code, out = cli("verify", "--cache-dir", str(root))
    assert code == 1
    assert f"{part}: does not match its SHA-256 in the manifest" in out
    code, out = cli("verify", "--cache-dir", str(root), "--repair")
    assert code == 1 and "moved" in out
    assert not part.exists() and store.read_manifest(folder) is None
    assert list((root / layout.QUARANTINE).rglob("part-00002.parquet"))  # kept, not deleted
    code, out = cli("extract", "--model", str(model), "--tasks", TASK, "--cache-dir", str(root))
    assert code == 0 and "20 new rows" in out, out  # only the moved part's texts
    assert cli("verify", "--cache-dir", str(root))[0] == 0
    code, _ = score_rows(model, root, tmp_path / "again")
    assert code == 0

    def scores(out: Path) -> dict[str, float]:
        return {r["method"]: float(r["main_score"]) for r in read_scores(out / "scores.csv")}

    before, again = scores(tmp_path / "before"), scores(tmp_path / "again")
    assert before.keys() == again.keys()
    for method, value in before.items():
        assert again[method] == pytest.approx(value, abs=1e-6)


@pytest.mark.parametrize("damage", ["truncated", "empty", "extra", "missing"])
def test_damaged_parts_are_refused_and_reported(
    damage: str, cache: tuple[Path, Path, Path]
) -> None:
    model, root, folder = cache
    part = folder / "part-00001.parquet"
    if damage == "truncated":
        part.write_bytes(part.read_bytes()[:-100])
        message = "bytes, the manifest says"
    elif damage == "empty":
        part.write_bytes(b"")
        message = "is 0 bytes"
    elif damage == "extra":
        part = folder / "part-00009.parquet"
        shutil.copy(folder / "part-00001.parquet", part)
        message = "is not in the manifest"
    else:
        part.unlink()
        message = "is in the manifest but missing"
    with pytest.raises(store.CacheError, match=message) as caught:
        read(model, root)
    assert str(part) in str(caught.value)
    report = verify.verify_cache(root)
    assert [(p.path, message in p.what) for p in report.problems] == [(part, True)]
    code, out = cli("verify", "--cache-dir", str(root), "--repair")
    assert code == 1 and (f"moved {part}" in out or damage == "missing")
    assert store.read_manifest(folder) is None  # incomplete again: extract recomputes


@pytest.mark.parametrize("content", ["{not json", "[1, 2]", "\xff\xfe"])
def test_a_manifest_that_is_not_json_is_one_line_everywhere(
    content: str, cache: tuple[Path, Path, Path], tmp_path: Path
) -> None:
    model, root, folder = cache
    (folder / store.MANIFEST).write_bytes(content.encode("latin-1"))
    code, out = score_rows(model, root, tmp_path / "r")
    assert code != 0 and "Traceback" not in out and "_manifest.json" in out
    code, out = cli("ls", "--cache-dir", str(root))
    assert code == 0 and "damaged" in out
    code, out = cli("verify", "--cache-dir", str(root))
    assert code == 1 and "_manifest.json" in out


def test_a_newer_schema_version_is_refused_not_moved(cache: tuple[Path, Path, Path]) -> None:
    model, root, folder = cache
    path = folder / store.MANIFEST
    manifest = json.loads(path.read_text())
    path.write_text(json.dumps({**manifest, "schema_version": parts.SCHEMA_VERSION + 1}))
    with pytest.raises(store.CacheError, match="newer than this moee-pipeline reads"):
        read(model, root)
    code, out = cli("verify", "--cache-dir", str(root), "--repair")
    assert code == 1 and "upgrade moee-pipeline" in out
    assert path.exists()  # nothing to repair: it is not damaged


def test_an_entry_moved_under_another_model_is_refused(cache: tuple[Path, Path, Path]) -> None:
    model, root, folder = cache
    other = layout.task_dir(root, model="org/other-model", prompt_id="none", task=TASK)
    other.parent.mkdir(parents=True)
    shutil.copytree(folder, other)
    with pytest.raises(store.CacheError, match=f"model={model.name}, not of its folder"):
        store.read_features(root, model="org/other-model", prompt_id="none", task=TASK)
    code, out = cli("verify", "--cache-dir", str(root), "--model", "org/other-model")
    assert code == 1 and "not of its folder" in out


def test_non_finite_values_and_duplicate_ids_are_reported(cache: tuple[Path, Path, Path]) -> None:
    _, root, folder = cache
    part = folder / "part-00003.parquet"
    table = pq.read_table(part)
    rw = parts.column_matrix(table.column("rw_last")).copy()
    rw[0, 0] = np.nan
    ids = table.column("text_id").to_pylist()
    ids[1] = ids[0]
    rw_field = table.schema.field("rw_last")
    column = parts.vector_array(rw).cast(rw_field.type)
    table = table.set_column(table.schema.get_field_index("rw_last"), rw_field, column)
    table = table.set_column(0, table.schema.field(0), pa.array(ids, pa.string()))
    record = parts.write_part(table, part)  # recorded as if written so
    path = folder / store.MANIFEST
    manifest = json.loads(path.read_text())
    manifest["parts"][part.name] = record
    path.write_text(json.dumps(manifest))
    whats = [p.what for p in verify.verify_cache(root).problems]
    assert "rw_last holds NaN or inf values" in whats
    assert "repeats 1 text id(s)" in whats


def test_a_damaged_task_snapshot_is_reported_and_is_one_line_for_score(
    cache: tuple[Path, Path, Path], tmp_path: Path
) -> None:
    model, root, _ = cache
    data = sorted((root / "tasks" / TASK).rglob("*.parquet"))[0]
    data.write_bytes(data.read_bytes()[: data.stat().st_size // 2])
    code, out = cli("verify", "--cache-dir", str(root))
    assert code == 1 and "is damaged (SHA-256)" in out
    code, out = score_rows(model, root, tmp_path / "r")
    assert code != 0 and "Traceback" not in out
    assert "task snapshot file" in out and "cannot be read" in out


def _recorded_as_written(folder: Path, part: Path, table: pa.Table) -> None:
    """Rewrite a part and record it in the manifest as if extraction had written it so."""
    record = parts.write_part(table, part)
    path = folder / store.MANIFEST
    manifest = json.loads(path.read_text())
    manifest["parts"][part.name] = record
    path.write_text(json.dumps(manifest))


def _narrow_rw(folder: Path, part: Path) -> None:
    table = pq.read_table(part)
    narrow = parts.vector_array(parts.column_matrix(table.column("rw_last"))[:, :-1])
    index = table.schema.get_field_index("rw_last")
    _recorded_as_written(folder, part, table.set_column(index, "rw_last", narrow))


def _miscount(folder: Path, part: Path) -> None:
    path = folder / store.MANIFEST
    manifest = json.loads(path.read_text())
    manifest["parts"][part.name]["rows"] += 1
    path.write_text(json.dumps(manifest))


DAMAGE = {
    "truncated": lambda folder, part: part.write_bytes(part.read_bytes()[:-100]),
    "flipped byte": lambda folder, part: flip_byte_in_column(part, "hs_last"),
    "no rw_last": lambda f, p: _recorded_as_written(f, p, pq.read_table(p).drop_columns("rw_last")),
    "narrow rw_last": _narrow_rw,
    "miscounted rows": _miscount,
}


@pytest.mark.parametrize("damage", list(DAMAGE))
def test_verify_and_read_features_refuse_a_damaged_part_in_the_same_words(
    damage: str, cache: tuple[Path, Path, Path]
) -> None:
    model, root, folder = cache
    part = folder / "part-00001.parquet"
    DAMAGE[damage](folder, part)
    with pytest.raises(FileProblem) as caught:
        read(model, root)
    refused = caught.value
    assert refused.path == part and refused.repairable
    assert str(refused) == f"{part} {refused.what}: {REPAIR_HINT}"
    (problem,) = verify.verify_cache(root).problems
    assert (problem.path, problem.what) == (part, refused.what)
    assert problem.movable and problem.entry == folder
    code, out = cli("verify", "--cache-dir", str(root))
    assert code == 1 and f"{part}: {refused.what}\n" in out


def extract_cmd(model: Path, root: Path, *args: str) -> tuple[int, str]:
    return cli("extract", "--model", str(model), "--tasks", TASK, "--cache-dir", str(root), *args)


@pytest.mark.slow
def test_a_part_removed_with_its_record_is_incomplete_everywhere_and_extract_mends_it(
    cache: tuple[Path, Path, Path], tmp_path: Path
) -> None:
    """ls, verify, score and extract agree, and the command they suggest works."""
    model, root, folder = cache
    part = folder / "part-00002.parquet"
    removed = pq.read_table(part, columns=["text_id"]).column(0).to_pylist()
    path = folder / store.MANIFEST
    manifest = json.loads(path.read_text())
    manifest["rows"] -= manifest["parts"].pop(part.name)["rows"]  # a consistent manifest
    path.write_text(json.dumps(manifest))
    part.unlink()
    total = manifest["texts_in_task"]
    code, out = cli("ls", "--cache-dir", str(root))
    assert code == 0 and f"incomplete: {len(removed)} of {total} texts missing" in out, out
    (problem,) = verify.verify_cache(root).problems
    assert problem.path == path and not problem.movable
    assert f"lack {len(removed)} of the task's {total} texts" in problem.what
    command = problem.what.split("run `")[1].rstrip("`")
    assert command.startswith("moee extract --model ") and f"--tasks {TASK}" in command
    code, out = score_rows(model, root, tmp_path / "r")
    assert code != 0 and "moee extract" in out and "Traceback" not in out
    # the suggested command, as verify printed it (here with this cache's --cache-dir)
    args = [*shlex.split(command)[1:], "--cache-dir", str(root)]
    code, out = cli(*args)
    assert code == 0 and f"{len(removed)} new rows" in out, out  # exactly the missing texts
    assert cli("verify", "--cache-dir", str(root))[0] == 0
    code, out = cli("ls", "--cache-dir", str(root))
    assert "incomplete" not in out and "complete" in out
    assert set(removed) <= set(read(model, root).text_ids)
    assert score_rows(model, root, tmp_path / "again")[0] == 0


def test_a_manifest_that_is_a_folder_is_one_line_everywhere_and_repair_moves_it(
    cache: tuple[Path, Path, Path], tmp_path: Path
) -> None:
    model, root, folder = cache
    path = folder / store.MANIFEST
    path.unlink()
    path.mkdir()
    line = f"{path} is a folder, not a manifest file"
    code, out = cli("ls", "--cache-dir", str(root))
    assert code == 0 and f"damaged: {line}" in out, out
    code, out = cli("verify", "--cache-dir", str(root))
    assert code == 1 and f"{path}: is a folder, not a manifest file" in out, out
    for code, out in (extract_cmd(model, root), score_rows(model, root, tmp_path / "r")):
        assert code != 0 and out.strip().splitlines()[-1] == f"Error: {line}: {REPAIR_HINT}", out
    code, out = cli("verify", "--cache-dir", str(root), "--repair")
    assert code == 1 and f"moved {path} -> " in out, out
    code, out = extract_cmd(model, root)
    assert code == 0 and "0 new rows" in out, out  # every part was kept: only the manifest
    assert cli("verify", "--cache-dir", str(root))[0] == 0


def test_a_deleted_task_snapshot_is_reported_and_extract_writes_it_again(
    cache: tuple[Path, Path, Path],
) -> None:
    model, root, _ = cache
    snapshot = root / layout.SNAPSHOTS / TASK
    shutil.rmtree(snapshot)
    code, out = cli("verify", "--cache-dir", str(root))
    assert code == 1, out
    assert f"{snapshot}: task snapshot of {TASK} is missing" in out
    assert f"rerun `moee extract --tasks {TASK}`" in out
    code, out = extract_cmd(model, root)
    assert code == 0 and "already complete" in out, out
    assert (snapshot / "manifest.json").is_file()
    code, out = cli("verify", "--cache-dir", str(root))
    assert code == 0 and "1 task snapshots checked: no problems" in out, out


def test_files_that_do_not_belong_in_the_cache_are_reported_and_moved_aside(
    cache: tuple[Path, Path, Path],
) -> None:
    model, root, folder = cache
    features = root / layout.FEATURES
    strays = [
        features / "model=x" / "scores.csv",  # `moee score --output cache/features/model=x`
        features / "model=x" / "mteb",
        features / "notes.txt",
        folder / "notes.txt",
        folder.parent / "README.md",
        root / layout.SNAPSHOTS / "copy.csv",
        root / layout.SNAPSHOTS / TASK / "data" / "extra.parquet",
    ]
    for path in strays:
        if path.suffix:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text("x\n")
        else:
            (path / "MoeeToySTS.json").parent.mkdir(parents=True)
            (path / "MoeeToySTS.json").write_text("{}")
    report = verify.verify_cache(root)
    assert sorted(p.path for p in report.problems) == sorted(strays)
    assert all("does not belong" in p.what for p in report.problems)
    code, out = cli("verify", "--cache-dir", str(root), "--repair")
    assert code == 1 and all(f"moved {p} -> " in out for p in strays), out
    assert not any(p.exists() for p in strays)
    assert cli("verify", "--cache-dir", str(root))[0] == 0
    assert len(read(model, root).text_ids) > 0  # the entry itself was never touched
