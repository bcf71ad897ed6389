"""Which MTEB tasks to run, how to load their data offline, and which texts they encode.

Both stages go through this module: extraction needs the exact texts a task's evaluation will
encode, scoring needs the same task data again without the network. Data comes from a snapshot
in the cache first, then from a local data dir with MTEB's raw columns, then from mteb's loader.
"""

from __future__ import annotations

import contextlib
import copy
import difflib
import logging
import os
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import datasets
import mteb
import numpy as np
import pyarrow.parquet as pq
from datasets import Dataset, DatasetDict
from mteb.abstasks import AbsTask
from mteb.abstasks.classification import AbsTaskClassification
from mteb.abstasks.retrieval import AbsTaskRetrieval
from mteb.models.model_meta import ModelMeta
from mteb.similarity_functions import cos_sim, pairwise_cos_sim
from threadpoolctl import threadpool_limits

from moee_pipeline.errors import MoeeError
from moee_pipeline.quiet import quiet_libraries
from moee_pipeline.snapshot import read_snapshot, write_snapshot
from moee_pipeline.toy import TOY_TASKS

logger = logging.getLogger(__name__)

__all__ = [
    "PAPER_TASKS",
    "TASK_TYPES",
    "TaskError",
    "get_task",
    "load_task",
    "select_tasks",
    "task_texts",
    "task_type",
    "write_snapshot",
]

TASK_TYPES: tuple[str, ...] = (
    "STS",
    "Classification",
    "Clustering",
    "PairClassification",
    "Reranking",
    "Summarization",
)

PAPER_TASKS: dict[str, str] = {
    "TweetSentimentExtractionClassification": "Classification",
    "EmotionClassification": "Classification",
    "ToxicConversationsClassification": "Classification",
    "TwentyNewsgroupsClustering": "Clustering",
    "MedrxivClusteringS2S": "Clustering",
    "TwitterURLCorpus": "PairClassification",
    "TwitterSemEval2015": "PairClassification",
    "AskUbuntuDupQuestions": "Reranking",
    "SciDocsRR": "Reranking",
    "StackOverflowDupQuestions": "Reranking",
    "STS12": "STS",
    "STS13": "STS",
    "STS14": "STS",
    "STS15": "STS",
    "STS16": "STS",
    "BIOSSES": "STS",
    "SICK-R": "STS",
    "STSBenchmark": "STS",
    "SummEval": "Summarization",
}

_RECORD_DIM = 8
_RECORD_BATCH = 1024


class TaskError(MoeeError):
    """A task cannot be found, selected or loaded; the message says what to do."""


def _known_task_names() -> list[str]:
    """Names of the toy tasks and of every mteb task of the six supported types."""
    names = list(TOY_TASKS)
    names += [t.metadata.name for t in mteb.get_tasks(task_types=list(TASK_TYPES))]
    return names


def get_task(name: str) -> AbsTask:
    """A fresh task instance: toy tasks first, then mteb's registry."""
    if name in TOY_TASKS:
        return TOY_TASKS[name]()
    try:
        task = mteb.get_task(name)
    except KeyError:
        close = difflib.get_close_matches(name, _known_task_names(), n=3)
        hint = f"did you mean {', '.join(close)}? " if close else ""
        raise TaskError(
            f"unknown task {name!r}: {hint}list tasks with "
            f"`python -c \"import mteb; print(mteb.get_tasks(task_types=['STS']))\"` "
            f"or use a toy task ({', '.join(TOY_TASKS)})"
        ) from None
    if task.metadata.type not in TASK_TYPES:
        raise TaskError(
            f"task {name!r} is of type {task.metadata.type}; "
            f"supported types: {', '.join(TASK_TYPES)}"
        )
    return task


def task_type(name: str) -> str:
    """The MTEB task type of a task (e.g. "STS"), without loading its data."""
    if name in PAPER_TASKS:
        return PAPER_TASKS[name]
    return str(get_task(name).metadata.type)


def select_tasks(
    *, tasks: Sequence[str] | None = None, task_types: Sequence[str] | None = None
) -> list[str]:
    """Task names to run: explicit names, else the paper's tasks of the given types, else all 19."""
    for kind in task_types or ():
        if kind not in TASK_TYPES:
            raise TaskError(f"unknown task type {kind!r}: choose from {', '.join(TASK_TYPES)}")
    if tasks:
        selected = list(dict.fromkeys(tasks))
        for name in selected:
            kind = task_type(name)  # raises TaskError for unknown names
            if task_types and kind not in task_types:
                raise TaskError(f"task {name} is of type {kind}, not in {', '.join(task_types)}")
        return selected
    if task_types:
        return [name for name, kind in PAPER_TASKS.items() if kind in task_types]
    return list(PAPER_TASKS)


def load_task(name: str, *, cache_dir: Path | None = None, data_dir: Path | None = None) -> AbsTask:
    """The task with its data loaded: from a cache snapshot, a local data dir or mteb's loader."""
    task = get_task(name)
    if cache_dir is not None:
        tree = read_snapshot(name, cache_dir=Path(cache_dir))
        if tree is not None:
            task.dataset = tree
            task.data_loaded = True
            logger.info("loaded %s from snapshot in %s", name, cache_dir)
            return task
    if name in TOY_TASKS:
        task.load_data()
        return task
    if data_dir is not None:
        _load_local(task, Path(data_dir))
        return task
    with _datasets_cache(cache_dir):
        try:
            task.load_data()
        except Exception as exc:
            raise TaskError(
                f"cannot load {name} with mteb's loader ({type(exc).__name__}: "
                f"{str(exc).splitlines()[0] if str(exc) else ''}); pass --data-dir with "
                f"<dir>/{name}/<split>.parquet or a --cache-dir holding a snapshot of it"
            ) from exc
    return task


def _read_split_folder(folder: Path, name: str) -> DatasetDict:
    """{split: Dataset} from `<folder>/<split>.parquet`, rows in file order, all in memory."""
    files = sorted(folder.glob("*.parquet"))
    if not files:
        raise TaskError(f"no <split>.parquet files in {folder} for task {name}")
    try:
        return DatasetDict({f.stem: Dataset(pq.read_table(f)) for f in files})
    except OSError as exc:
        raise TaskError(f"cannot read task data in {folder}: {exc}") from exc


def _load_local(task: AbsTask, data_dir: Path) -> None:
    """Load `<data_dir>/<name>/<split>.parquet` (MTEB raw columns), then the task's transform."""
    name = task.metadata.name
    if not data_dir.is_dir() or not os.access(data_dir, os.R_OK | os.X_OK):
        raise TaskError(f"data dir {data_dir} does not exist or is not readable")
    folder = data_dir / name
    if not folder.is_dir():
        raise TaskError(f"no folder {folder}: expected {name}/<split>.parquet with MTEB's columns")
    if isinstance(task, AbsTaskRetrieval):
        raise TaskError(
            f"local data dirs are not supported for retrieval-style task {name}; "
            "load it once online and use its snapshot under <cache>/tasks/"
        )
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
            raise TaskError(f"{folder} lacks split file(s) {', '.join(missing)}.parquet for {name}")
    task.dataset = raw
    try:
        task.dataset_transform()
    except ValueError as exc:
        # Only a copy whose columns already carry mteb's renamed names may skip the transform
        # (datasets: "Original column name sent1 not in the dataset"); anything else is an error.
        if "not in the dataset" not in str(exc):
            raise TaskError(f"{folder}: mteb's transform of {name} failed: {exc}") from exc
        logger.warning("%s: columns already renamed (%s); using %s as it is", name, exc, folder)
        task.dataset = raw
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
    root = Path(cache_dir) / "hf-datasets"
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


class _TextRecorder:
    """An mteb encoder that records every text mteb asks it to encode (batch["text"]).

    It returns seeded random vectors, so the evaluation runs to completion in seconds.
    """

    def __init__(self, seed: int = 0) -> None:
        self.texts: list[str] = []
        self._rng = np.random.default_rng(seed)
        self._meta = ModelMeta.create_empty(
            {"name": "moee-pipeline/text-recorder", "revision": "1", "embed_dim": _RECORD_DIM}
        )

    @property
    def mteb_model_meta(self) -> ModelMeta:
        """Metadata mteb requires of every encoder."""
        return self._meta

    def encode(
        self, inputs: Any, *, task_metadata: Any, hf_split: str, hf_subset: str, **kwargs: Any
    ) -> np.ndarray:
        """Record the batch texts and return one random float32 vector per text."""
        n = 0
        for batch in inputs:
            if "text" not in batch:
                raise TaskError(f"{task_metadata.name} feeds non-text inputs; only text tasks work")
            texts = list(batch["text"])
            self.texts.extend(texts)
            n += len(texts)
        return self._rng.standard_normal((n, _RECORD_DIM)).astype(np.float32)

    def similarity(self, embeddings1: Any, embeddings2: Any) -> Any:
        """Cosine similarity matrix, as mteb's default."""
        return cos_sim(embeddings1, embeddings2)

    def similarity_pairwise(self, embeddings1: Any, embeddings2: Any) -> Any:
        """Row-wise cosine similarity."""
        return pairwise_cos_sim(embeddings1, embeddings2)


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


def _clone_for_recording(task: AbsTask) -> AbsTask:
    """A private copy (see `private_copy`) that skips classification metrics."""
    clone = private_copy(task)
    if isinstance(clone, AbsTaskClassification):
        # Metrics run after all encoding and never encode; on 30k-row tasks sklearn's checks over
        # datasets' lazy label columns take most of the time, so the recording run skips them.
        clone._calculate_scores = _dummy_classification_scores  # type: ignore[method-assign]
    return clone


def _dummy_classification_scores(y_test: Any, y_pred: Any) -> dict[str, float | None]:
    """Placeholder metrics for the recording run (the scores of random vectors are meaningless)."""
    keys = ("accuracy", "f1", "f1_weighted", "precision", "precision_weighted", "recall")
    return {**dict.fromkeys(keys, 0.0), "recall_weighted": 0.0, "ap": None, "ap_weighted": None}


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
            f"{task.metadata.name} has none of the splits {list(wanted)}; it has {sorted(have)}"
        )
    return chosen


def task_texts(task: AbsTask, *, splits: Sequence[str] | None = None) -> list[str]:
    """Exactly the texts mteb's evaluation of `task` encodes, deduplicated, in first-seen order.

    Runs the real evaluation once with a recording encoder, so it cannot drift from mteb
    (few-shot train rows, titles joined to documents, summaries, both sides of pairs).
    `splits` evaluates other splits than the task's own (see `eval_splits`), e.g. validation
    as well as test, for choosing MoEE-sum's weight without test labels.
    """
    if not task.data_loaded:
        raise TaskError(f"task {task.metadata.name} has no data loaded; use load_task() first")
    clone = _clone_for_recording(task)
    clone.filter_eval_splits(eval_splits(task, splits))
    recorder = _TextRecorder()
    # k-means and logistic regression on tiny random vectors gain nothing from threads, and
    # OpenMP spinning on a busy machine made this 20x slower
    with threadpool_limits(limits=1), quiet_libraries():
        mteb.evaluate(
            recorder,
            clone,
            cache=None,
            co2_tracker=False,
            show_progress_bar=False,
            encode_kwargs={"batch_size": _RECORD_BATCH, "show_progress_bar": False},
        )
    texts = list(dict.fromkeys(recorder.texts))
    logger.info("%s: %d texts (%d encoded)", task.metadata.name, len(texts), len(recorder.texts))
    return texts
