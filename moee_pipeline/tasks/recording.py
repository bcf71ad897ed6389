"""The exact texts a task's evaluation encodes, recorded by running mteb's own evaluation once.

Recording cannot drift from mteb: few-shot train rows, titles joined to documents, summaries and
both sides of pairs are whatever mteb passes to the encoder. The task's own `evaluate` is called
split by split and subset by subset, as `mteb.evaluate` does, without `mteb.evaluate`'s model
resolution (it imports sentence-transformers: seconds before the first forward) and result files.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from mteb.abstasks import AbsTask, AbsTaskBitextMining
from mteb.abstasks.classification import AbsTaskClassification
from mteb.models.abs_encoder import AbsEncoder
from mteb.models.model_meta import ModelMeta
from threadpoolctl import threadpool_limits

from moee_pipeline.cache.layout import snapshot_dir
from moee_pipeline.cache.snapshots import merge_split_texts, read_encoded_texts, write_encoded_texts
from moee_pipeline.errors import first_line
from moee_pipeline.quiet import quiet_libraries
from moee_pipeline.sides import side_of
from moee_pipeline.tasks.labels import eager_labels
from moee_pipeline.tasks.loading import eval_splits, private_copy
from moee_pipeline.tasks.meta import encoder_meta
from moee_pipeline.tasks.registry import TaskError
from moee_pipeline.vocabulary import SIDES

logger = logging.getLogger(__name__)

_RECORD_DIM = 8
_RECORD_BATCH = 1024


class _TextRecorder(AbsEncoder):
    """An mteb encoder that records every text mteb asks it to encode (batch["text"]).

    It returns seeded random vectors, so the evaluation runs to completion in seconds; mteb's
    `AbsEncoder` supplies the (cosine) similarity functions.
    """

    mteb_model_meta: ModelMeta  # always set: mteb's protocol requires it

    def __init__(self, seed: int = 0) -> None:
        self.texts: list[str] = []
        #: text -> the sides mteb encoded it as (its `prompt_type`: query, document), if any.
        self.sides: dict[str, set[str]] = {}
        self._rng = np.random.default_rng(seed)
        self.mteb_model_meta = encoder_meta(
            name="moee-pipeline/text-recorder", revision="1", embed_dim=_RECORD_DIM
        )

    def encode(
        self,
        inputs: Any,
        *,
        task_metadata: Any,
        hf_split: str,
        hf_subset: str,
        prompt_type: Any = None,
        **kwargs: Any,
    ) -> np.ndarray:
        """Record the batch texts (and their side) and return one random vector per text."""
        n = 0
        side = side_of(prompt_type)
        for batch in inputs:
            if "text" not in batch:
                raise TaskError(f"{task_metadata.name} feeds non-text inputs; only text tasks work")
            texts = list(batch["text"])
            self.texts.extend(texts)
            for text in texts:
                found = self.sides.setdefault(text, set())
                if side is not None:
                    found.add(side)
            n += len(texts)
        return self._rng.standard_normal((n, _RECORD_DIM)).astype(np.float32)


def text_sides(recorder: _TextRecorder, texts: Sequence[str]) -> list[str]:
    """Each text's sides as stored: "query", "document", "query,document" or "" (none)."""
    return [",".join(s for s in SIDES if s in recorder.sides.get(t, ())) for t in texts]


def _clone_for_recording(task: AbsTask) -> AbsTask:
    """A private copy (see `private_copy`): labels read once, classification metrics skipped."""
    clone = private_copy(task)
    if isinstance(clone, AbsTaskClassification):
        eager_labels(clone)
        # Metrics run after all encoding and never encode; on 30k-row tasks sklearn's checks over
        # datasets' lazy label columns take most of the time, so the recording run skips them.
        clone._calculate_scores = _dummy_classification_scores  # type: ignore[method-assign,assignment]
    return clone


def _dummy_classification_scores(y_test: Any, y_pred: Any) -> dict[str, float | None]:
    """Placeholder metrics for the recording run (the scores of random vectors are meaningless)."""
    keys = ("accuracy", "f1", "f1_weighted", "precision", "precision_weighted", "recall")
    return {**dict.fromkeys(keys, 0.0), "recall_weighted": 0.0, "ap": None, "ap_weighted": None}


def record_split(task: AbsTask, split: str) -> list[str]:
    """Run mteb's evaluation of one split with a recording encoder; its texts, unique, in order
    (`record_split_sides` also gives each text's sides)."""
    return record_split_sides(task, split)[0]


def record_split_sides(task: AbsTask, split: str) -> tuple[list[str], list[str]]:
    """Run mteb's evaluation of one split with a recording encoder: its texts, unique, in order,
    and the side(s) mteb encoded each as (`text_sides`; "" for tasks without sides).

    Each split is evaluated alone on a private copy, exactly as scoring evaluates it, so the
    list is what that split's evaluation encodes (test texts plus the few-shot train rows for
    classification) and per-split statistics can be fitted on it.
    """
    if not task.data_loaded:
        raise TaskError(f"task {task.metadata.name} has no data loaded; use load_task() first")
    clone = _clone_for_recording(task)
    clone.filter_eval_splits([split])
    recorder = _TextRecorder()
    # k-means and logistic regression on tiny random vectors gain nothing from threads, and
    # OpenMP spinning on a busy machine made this 20x slower
    subsets = list(clone.hf_subsets)
    batches = [subsets] if isinstance(clone, AbsTaskBitextMining) else [[s] for s in subsets]
    with threadpool_limits(limits=1), quiet_libraries():
        for batch in batches:
            clone.evaluate(
                recorder,
                split,
                subsets_to_run=batch,
                encode_kwargs={"batch_size": _RECORD_BATCH, "show_progress_bar": False},
            )
    texts = list(dict.fromkeys(recorder.texts))
    logger.info(
        "%s/%s: %d texts (%d encoded)", task.metadata.name, split, len(texts), len(recorder.texts)
    )
    return texts, text_sides(recorder, texts)


def split_texts(
    task: AbsTask, *, splits: Sequence[str] | None = None, cache_dir: Path | None = None
) -> dict[str, list[str]]:
    """{split: the texts its evaluation encodes} for the chosen splits (see `eval_splits`).

    With a cache dir, each split's list is recorded once and kept beside the task snapshot, so a
    second model, prompt, rerun or the scoring stage reads it instead of running mteb again.
    """
    name = task.metadata.name
    out: dict[str, list[str]] = {}
    for split in eval_splits(task, splits):
        texts = read_encoded_texts(name, split, cache_dir=cache_dir) if cache_dir else None
        if texts is None:
            try:
                texts, sides = record_split_sides(task, split)
            except (ValueError, KeyError, TypeError, IndexError) as error:
                # bad task data (wrong columns, no rows, null texts) fails deep inside mteb
                logger.debug("recording %s/%s failed", name, split, exc_info=True)
                first = first_line(error, limit=80)
                where = f"; then move {snapshot_dir(cache_dir, name)} away" if cache_dir else ""
                raise TaskError(
                    f"mteb cannot evaluate {name} ({split}) on its data "
                    f"({type(error).__name__}: {first}): fix its columns and rows{where}"
                ) from None
            if cache_dir is not None:
                write_encoded_texts(name, split, texts, cache_dir=cache_dir, sides=sides)
        out[split] = texts
    return out


def task_texts(
    task: AbsTask, *, splits: Sequence[str] | None = None, cache_dir: Path | None = None
) -> list[str]:
    """Every text mteb's evaluation of `task` encodes over the chosen splits, unique, in order.

    `splits` evaluates other splits than the task's own (see `eval_splits`), e.g. validation as
    well as test, for choosing MoEE-sum's weight without test labels.
    """
    per_split = split_texts(task, splits=splits, cache_dir=cache_dir)
    return merge_split_texts(per_split.values())
