"""Task data offline: a cache snapshot first, then a local data dir with MTEB's raw columns,
then the task's own loader (mteb's, with the datasets cache kept under our cache dir).

What `--data-dir DIR` means is the same for every task: `DIR/<Task>/<split>.parquet` (for a
Retrieval task `DIR/<Task>/{corpus,queries,qrels}/<split>.parquet`) replaces the task's own
loader. For mteb's tasks that loader downloads, so a data dir without the task's folder is an
error (the user asked not to download). A registered task (tasks/registry.py)
brings its own loader, which may build its data in code as the toy tasks do: without a folder
in DIR it simply loads its own data.
"""

from __future__ import annotations

import contextlib
import copy
import errno
import logging
import os
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import datasets
import pyarrow as pa
import pyarrow.parquet as pq
from datasets import Dataset, DatasetDict
from mteb.abstasks import AbsTask
from mteb.abstasks.classification import AbsTaskClassification
from mteb.abstasks.retrieval import AbsTaskRetrieval

from moee_pipeline.cache.layout import datasets_cache, snapshot_dir
from moee_pipeline.cache.snapshots import arrow_table, read_snapshot
from moee_pipeline.cache.sources import note_source, same_source, source_of
from moee_pipeline.errors import first_line
from moee_pipeline.tasks.columns import check_text_columns
from moee_pipeline.tasks.registry import TaskError, get_task, is_registered
from moee_pipeline.tasks.retrieval_data import has_retrieval_layout, read_retrieval_split
from moee_pipeline.vocabulary import RETRIEVAL

logger = logging.getLogger(__name__)


def load_task(name: str, *, cache_dir: Path | None = None, data_dir: Path | None = None) -> AbsTask:
    """The task with its data loaded: from a cache snapshot, a local data dir or its own loader
    (see the module doc for what a data dir means to a registered task).

    Data a data dir holds for the task is never replaced by a snapshot in silence: a snapshot
    made from other data is refused (`check_data_dir`). Wherever the data came from, the
    columns its evaluation encodes must hold text (`check_text_columns`).
    """
    task = get_task(name)
    registered = is_registered(name)
    if data_dir is not None:
        data_dir = Path(data_dir)
        if not data_dir.is_dir() or not os.access(data_dir, os.R_OK | os.X_OK):
            raise TaskError(
                f"data dir {data_dir} does not exist or is not readable: fix --data-dir"
            )
    own_folder = data_dir is not None and _task_folder(data_dir / name) is not None
    if cache_dir is not None:
        tree = read_snapshot(name, cache_dir=Path(cache_dir))
        if tree is not None:
            if data_dir is not None and own_folder:
                check_data_dir(name, tree, data_dir=data_dir, cache_dir=Path(cache_dir))
            task.dataset = tree
            task.data_loaded = True
            folder = snapshot_dir(Path(cache_dir), name)
            check_text_columns(
                task,
                lambda subset, split: f"task snapshot {folder} ({split})",
                fix=" in the task's data; move the snapshot away, then extract again",
            )
            logger.info("loaded %s from snapshot in %s", name, cache_dir)
            return task
    if data_dir is not None and (not registered or own_folder):
        _load_local(task, data_dir)
        return task
    if registered:
        task.load_data()  # its own loader, in code or wherever its package keeps the data
        check_text_columns(
            task, lambda subset, split: f"{name} ({split}, from its loader)", fix=" in its loader"
        )
        return task
    with _datasets_cache(cache_dir):
        try:
            task.load_data()
        except Exception as exc:
            logger.info("mteb's loader of %s failed: %s", name, exc)
            raise TaskError(
                f"cannot load {name} with mteb's loader ({first_line(exc, limit=60)}): pass "
                f"--data-dir with <dir>/{name}/<split>.parquet or a --cache-dir with its snapshot"
            ) from exc
    check_text_columns(
        task, lambda subset, split: f"{name} ({split}, from mteb's loader)", fix=" in a --data-dir"
    )
    return task


#: What to do about a path in a data dir the operating system cannot open, by errno.
_OS_ADVICE = {
    errno.ELOOP: "a symbolic link loop: point the link at the real file",
    errno.ENOENT: "a link to nothing: point it at the real file",
    errno.EACCES: "make it readable",
    errno.EISDIR: "a folder, not a file: write the split as one Parquet file",
}


def _unreadable(path: Path, error: OSError) -> TaskError:
    """The one line for a data dir path the OS cannot open: its cause, what to do."""
    cause = error.strerror or first_line(error)
    advice = _OS_ADVICE.get(error.errno or 0, "check the path and the disk")
    return TaskError(f"cannot open task data {path} ({cause}): {advice}")


def _task_folder(path: Path) -> Path | None:
    """`path` if it is a folder, None if nothing is there; anything else (a link loop, a
    dangling link, a file, a folder we may not enter) is an error saying so, never "absent"."""
    try:
        if not path.is_symlink() and not path.exists():
            return None
        path.stat()
    except OSError as error:
        raise _unreadable(path, error) from None
    if not path.is_dir():
        raise TaskError(f"{path} is a file: the task's data is a folder of <split>.parquet files")
    return path


def check_data_dir(name: str, snapshot: Any, *, data_dir: Path, cache_dir: Path) -> None:
    """Refuse a data dir whose data for task `name` is not the data its snapshot holds.

    The snapshot is what the task's cache entries were extracted from and what scoring reads,
    so other data named with --data-dir would silently lose to it. Files seen before (their
    bytes are the ones the snapshot records) pass at once; others are loaded and compared.
    """
    if same_source(name, data_dir, cache_dir=cache_dir):
        return
    fresh = get_task(name)
    _load_local(fresh, data_dir)
    difference = _difference(fresh.dataset, snapshot, where="")
    if difference is not None:
        logger.info("the snapshot of %s is %s", name, snapshot_dir(cache_dir, name))
        raise TaskError(
            f"--data-dir holds other {name} data than the cache's snapshot tasks/{name} "
            f"({difference}): move that snapshot away and extract again with --overwrite, or "
            "drop --data-dir"
        )
    source = source_of(name, data_dir)
    if source is not None:
        note_source(name, source, cache_dir=cache_dir)


def _difference(new: Any, old: Any, *, where: str) -> str | None:
    """Where two loaded dataset trees first differ (`split: 183 rows, the snapshot 55`), or
    None when they hold the same data in the same order."""
    label = where or "the data"
    if isinstance(new, Dataset) or isinstance(old, Dataset):
        if not (isinstance(new, Dataset) and isinstance(old, Dataset)):
            return f"{label}: another kind of data"
        if new.num_rows != old.num_rows:
            return f"{label}: {new.num_rows} rows, the snapshot {old.num_rows}"
        a, b = arrow_table(new), arrow_table(old)
        if a.column_names != b.column_names:
            return f"{label}: columns {a.column_names}, the snapshot {b.column_names}"
        for column in a.column_names:
            if a.column(column).to_pylist() != b.column(column).to_pylist():
                return f"{label}: other values in column {column!r}"
        return None
    if isinstance(new, dict) and isinstance(old, dict):
        if where.endswith("relevant_docs"):  # a retrieval split's qrels: {query: {doc: grade}}
            if new != old:
                return f"{label}: other qrels ({len(new)} queries judged, the snapshot {len(old)})"
            return None
        if set(new) != set(old):
            return f"{label}: splits {sorted(new)}, the snapshot {sorted(old)}"
        for key in new:
            found = _difference(new[key], old[key], where=f"{where}/{key}".strip("/"))
            if found is not None:
                return found
        return None
    return None if new == old else f"{label}: other values"


def _read_split_folder(folder: Path, name: str) -> DatasetDict:
    """{split: Dataset} from `<folder>/<split>.parquet`, rows in file order, all in memory."""
    files = sorted(folder.glob("*.parquet"))
    if not files:
        raise TaskError(f"no <split>.parquet files in {folder} for task {name}")
    tables = {}
    for f in files:
        try:
            with f.open("rb"):  # the OS's reason first: pyarrow's would read "not Parquet"
                pass
        except OSError as error:
            logger.info("opening %s: %s", f, error)
            raise _unreadable(f, error) from None
        try:
            tables[f.stem] = pq.read_table(f)
        except (OSError, pa.ArrowException) as exc:
            logger.info("reading %s: %s", f, exc)
            raise TaskError(
                f"cannot read task data {f} as Parquet (not Parquet, or damaged): "
                "write the split as Parquet"
            ) from None
        _check_table(tables[f.stem], f)
    return DatasetDict({split: Dataset(table) for split, table in tables.items()})


def _check_table(table: pa.Table, path: Path) -> None:
    """Refuse a split file without rows or with missing texts: mteb would fail deep inside."""
    if table.num_rows == 0:
        raise TaskError(f"{path} has no rows: every split of a task needs its data")
    for field in table.schema:
        nulls = table.column(field.name).null_count
        if nulls and (pa.types.is_string(field.type) or pa.types.is_large_string(field.type)):
            raise TaskError(
                f"{path}: column {field.name!r} has {nulls} null value(s); "
                "use an empty string or drop those rows"
            )


def _load_local(task: AbsTask, data_dir: Path) -> None:
    """Load `<data_dir>/<name>/<split>.parquet` (MTEB raw columns), then the task's transform."""
    name = task.metadata.name
    folder = data_dir / name
    if _task_folder(folder) is None:
        raise TaskError(f"no folder {folder}: expected {name}/<split>.parquet with MTEB's columns")
    if isinstance(task, AbsTaskRetrieval):
        if task.metadata.type != RETRIEVAL:
            raise TaskError(
                f"local data dirs are not supported for {task.metadata.type} task {name}; "
                "load it once online and use its snapshot under <cache>/tasks/"
            )
        _load_local_retrieval(task, folder)
        return
    if task.metadata.is_multilingual:
        raw: Any = {s: _read_split_folder(folder / s, name) for s in task.hf_subsets}
    else:
        raw = _read_split_folder(folder, name)
    needed = set(task.eval_splits)
    if isinstance(task, AbsTaskClassification):
        needed.add(task.train_split)
    for splits in raw.values() if task.metadata.is_multilingual else [raw]:
        missing = sorted(s for s in needed if s not in splits)
        if missing:
            raise TaskError(
                f"{folder} lacks split file(s) {', '.join(missing)}.parquet for {name}: add them"
            )
    task.dataset = raw
    try:
        task.dataset_transform()
    except ValueError as exc:
        # Only a copy whose columns already carry mteb's renamed names may skip the transform
        # (datasets: "Original column name sent1 not in the dataset"); anything else is an error.
        if "not in the dataset" not in str(exc):
            logger.info("mteb's transform of %s failed: %s", name, exc)
            raise TaskError(
                f"{folder}: mteb's transform of {name} failed ({first_line(exc, limit=80)}): "
                "use MTEB's column names"
            ) from exc
        logger.warning("%s: columns already renamed (%s); using %s as it is", name, exc, folder)
        task.dataset = raw

    def source(subset: str | None, split: str) -> str:
        return str((folder if subset is None else folder / subset) / f"{split}.parquet")

    check_text_columns(task, source, fix="")
    task.data_loaded = True
    logger.info("loaded %s from %s", name, folder)


def _load_local_retrieval(task: AbsTask, folder: Path) -> None:
    """Load `<folder>/[<subset>/]{corpus,queries,qrels}/<split>.parquet`, checked
    (`read_retrieval_split`), into mteb 2's {subset: {split: parts}} tree."""
    name = task.metadata.name
    subsets = list(task.hf_subsets) if task.metadata.is_multilingual else ["default"]
    tree: dict[str, dict[str, Any]] = {}
    for subset in subsets:
        base = folder / subset if task.metadata.is_multilingual else folder
        if not has_retrieval_layout(base):
            raise TaskError(
                f"{base} is not laid out for retrieval task {name}: expected "
                "corpus/<split>.parquet, queries/<split>.parquet and qrels/<split>.parquet"
            )
        tree[subset] = {split: read_retrieval_split(base, split) for split in task.eval_splits}
    task.dataset = tree
    task.dataset_transform()
    task.data_loaded = True
    logger.info("loaded %s from %s", name, folder)


@contextlib.contextmanager
def _datasets_cache(cache_dir: Path | None) -> Iterator[None]:
    """Point the datasets library's caches under our cache dir while mteb's loader runs.

    mteb's loaders give no way to pass `cache_dir`, and their default is ~/.cache. An explicit
    HF_DATASETS_CACHE set by the user wins.
    """
    if cache_dir is None or "HF_DATASETS_CACHE" in os.environ:
        yield
        return
    root = datasets_cache(Path(cache_dir))
    names = ("HF_DATASETS_CACHE", "DOWNLOADED_DATASETS_PATH", "EXTRACTED_DATASETS_PATH")
    saved = {n: getattr(datasets.config, n) for n in names}
    new = (root, root / "downloads", root / "downloads" / "extracted")
    try:
        for n, value in zip(names, new, strict=True):
            setattr(datasets.config, n, value)
        yield
    finally:
        for n, value in saved.items():
            setattr(datasets.config, n, value)


def private_copy(task: AbsTask) -> AbsTask:
    """A shallow copy with private RNG state and container dicts: every evaluation starts alike.

    Non-legacy clustering draws documents from `task.rng_state`; evaluating one task object
    twice (recording its texts, then scoring many configurations) would otherwise encode
    different texts each time. The data itself is shared, not copied.
    """

    def containers(value: Any) -> Any:
        if isinstance(value, DatasetDict):
            return DatasetDict({k: containers(v) for k, v in value.items()})
        if isinstance(value, dict):
            return {k: containers(v) for k, v in value.items()}
        return value

    clone = copy.copy(task)
    clone.rng_state = copy.deepcopy(task.rng_state)
    clone.np_rng = copy.deepcopy(task.np_rng)
    clone.dataset = containers(task.dataset)
    return clone


def data_splits(task: AbsTask) -> set[str]:
    """The split names the loaded task data holds (over all its subsets)."""
    dataset: Any = task.dataset
    subsets = [dataset[s] for s in task.hf_subsets if s in dataset]
    return {str(k) for d in (subsets or [dataset]) for k in d}


def eval_splits(task: AbsTask, wanted: Sequence[str] | None = None) -> list[str]:
    """The splits to evaluate: the task's own eval splits, or those of `wanted` it holds.

    A task without the asked-for split (STS12 has no validation split) simply skips it;
    a task holding none of them is an error.
    """
    if not wanted:
        return list(task.eval_splits)
    have = data_splits(task)
    chosen = [s for s in dict.fromkeys(wanted) if s in have]
    if not chosen:
        raise TaskError(
            f"{task.metadata.name} has none of the splits {list(wanted)} (it has {sorted(have)}): "
            "ask for one it has"
        )
    return chosen
