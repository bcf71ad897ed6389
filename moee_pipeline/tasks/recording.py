"""The exact texts a task's evaluation encodes, recorded by running mteb's own evaluation once.

Recording cannot drift from mteb: few-shot train rows, titles joined to documents, summaries and
both sides of pairs are whatever mteb passes to the encoder.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

import mteb
import numpy as np
from mteb.abstasks import AbsTask
from mteb.abstasks.classification import AbsTaskClassification
from mteb.models.model_meta import ModelMeta
from mteb.similarity_functions import cos_sim, pairwise_cos_sim
from threadpoolctl import threadpool_limits

from moee_pipeline.quiet import quiet_libraries
from moee_pipeline.tasks.loading import eval_splits, private_copy
from moee_pipeline.tasks.registry import TaskError

logger = logging.getLogger(__name__)

_RECORD_DIM = 8
_RECORD_BATCH = 1024


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
