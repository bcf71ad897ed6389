"""Evaluate one task with cached embeddings through mteb's own evaluators.

The encoder never runs a model: it looks every text mteb asks for up by its text id in the
cached rows and asks its `VectorSource` for exactly those rows: rows of a matrix, or rows
computed on the fly from the feature cache (`score.embedder`), so a corpus searched in chunks
only ever has one chunk's embeddings. A text that is not cached is an error, never a zero
vector, because a silent zero would quietly lower the score.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import mteb
import numpy as np
from mteb.abstasks import AbsTask
from mteb.abstasks.classification import AbsTaskClassification
from mteb.abstasks.retrieval import AbsTaskRetrieval
from mteb.models import SearchEncoderWrapper
from mteb.models.abs_encoder import AbsEncoder
from mteb.models.model_meta import ModelMeta
from mteb.results import TaskResult

from moee_pipeline.cache.parts import text_id
from moee_pipeline.errors import MoeeError
from moee_pipeline.score.vectors import VectorSource, as_source
from moee_pipeline.sides import side_of
from moee_pipeline.tasks import private_copy
from moee_pipeline.tasks.labels import eager_labels
from moee_pipeline.tasks.meta import encoder_meta
from moee_pipeline.vocabulary import DOCUMENT, Side

logger = logging.getLogger(__name__)

ENCODE_BATCH = 4096  # texts per DataLoader batch; large because a lookup costs nothing


class MissingTextsError(MoeeError, LookupError):
    """mteb asked for texts that the feature cache does not hold."""


def row_index(text_ids: Sequence[str]) -> dict[str, int]:
    """text_id -> row of the cached arrays (the first row wins if a text was stored twice)."""
    index: dict[str, int] = {}
    for row, tid in enumerate(text_ids):
        index.setdefault(tid, row)
    return index


def cache_rows(
    texts: Sequence[str], index: Mapping[str, int], *, where: str, hint: str = ""
) -> np.ndarray:
    """Row numbers of `texts` in a task's cached arrays; raises MissingTextsError naming `where`."""
    rows = np.fromiter((index.get(text_id(t), -1) for t in texts), np.int64, count=len(texts))
    missing = int((rows < 0).sum())
    if missing:
        raise MissingTextsError(
            f"{where}: {missing} of {len(texts)} texts are not in the feature cache"
            f"{'; ' + hint if hint else ''}"
        )
    return rows


class CachedEncoder(AbsEncoder):
    """An mteb 2.x encoder whose vectors come from cached rows.

    mteb's `AbsEncoder` supplies the similarity functions (cosine, as the metadata says). For a
    retrieval task mteb wraps it in its own search wrapper, which asks for the queries and
    then the corpus, chunk by chunk, each lookup answered by `embeddings.take`.

    Args:
        index: text_id -> row of `embeddings`, built once per task with `row_index`.
        embeddings: one vector per cached row: a (rows, dim) matrix, or any `VectorSource`.
        name: model name shown in mteb's results ("org/name" form).
        revision: model revision shown in mteb's results.
        hint: appended to the missing-text error, e.g. the extract command to run.
        sides: text_id -> row per side, where a retrieval task's queries and documents have
            rows of their own (two templates, `score.sided`): each text mteb encodes is looked
            up in the rows of the side its `prompt_type` names.
    """

    mteb_model_meta: ModelMeta  # always set: mteb's protocol requires it

    def __init__(
        self,
        *,
        index: Mapping[str, int],
        embeddings: np.ndarray | VectorSource,
        name: str = "moee/cached",
        revision: str = "cached",
        hint: str = "",
        sides: Mapping[Side, Mapping[str, int]] | None = None,
    ) -> None:
        source = as_source(embeddings)
        if source.rows < len(set(index.values())):
            raise ValueError(f"{source.rows} embeddings of width {source.dim} do not fit the index")
        self._index = index
        self._sides = sides
        self._vectors = source
        self._hint = hint
        #: The most rows one `encode` call asked for (what a chunked search bounds).
        self.largest_encode = 0
        self.mteb_model_meta = encoder_meta(name=name, revision=revision, embed_dim=source.dim)

    def rows_for(
        self, texts: Sequence[str], *, task_name: str, side: Side | None = None
    ) -> np.ndarray:
        """Row numbers of `texts` in the cache (in `side`'s rows, where sides have their own);
        raises MissingTextsError naming the task."""
        index = self._index
        if self._sides is not None:
            if side is None:
                raise MissingTextsError(
                    f"{task_name}: mteb encoded texts as neither queries nor documents, but "
                    "each side has its own prompt"
                )
            index = self._sides[side]
        return cache_rows(texts, index, where=task_name, hint=self._hint)

    def encode(
        self,
        inputs: Iterable[Mapping[str, Any]],
        *,
        task_metadata: Any,
        hf_split: str,
        hf_subset: str,
        prompt_type: Any = None,
        **kwargs: Any,
    ) -> np.ndarray:
        """Gather the cached vectors of every text in the DataLoader, in its order."""
        texts: list[str] = []
        for batch in inputs:
            if "text" not in batch:
                raise MissingTextsError(f"{task_metadata.name} feeds non-text inputs")
            texts.extend(batch["text"])
        rows = self.rows_for(texts, task_name=task_metadata.name, side=side_of(prompt_type))
        self.largest_encode = max(self.largest_encode, len(rows))
        return self._vectors.take(rows)


def fresh_view(task: AbsTask) -> AbsTask:
    """A private copy of the task (same texts every time), with labels read fast."""
    view = private_copy(task)
    if isinstance(view, AbsTaskClassification):
        eager_labels(view)
    return view


@dataclass(frozen=True)
class TaskScore:
    """The main score of one task split under one configuration, as mteb reports it (0-1)."""

    task: str
    task_type: str
    split: str
    main_metric: str
    main_score: float


def _run_mteb(view: AbsTask, encoder: CachedEncoder | SearchEncoderWrapper) -> TaskResult:
    """mteb's own evaluation of a private task view, never writing to mteb's ~/.cache."""
    result = mteb.evaluate(
        encoder,
        view,
        cache=None,
        co2_tracker=False,
        raise_error=True,
        show_progress_bar=False,
        encode_kwargs={"batch_size": ENCODE_BATCH, "show_progress_bar": False},
    )
    if result.exceptions:
        raise RuntimeError(f"mteb failed on {view.metadata.name}: {result.exceptions[0].exception}")
    return result.task_results[0]


def _in_cache_order(view: AbsTask, split: str, encoder: CachedEncoder) -> None:
    """Put each corpus of a retrieval view in the order of its cached rows.

    mteb's search embeds the corpus in consecutive chunks; in cache order each chunk's rows lie
    in consecutive row groups, so a corpus read from disk is decoded once per configuration,
    not once per chunk. Rankings do not depend on corpus order: mteb keeps each query's best
    (score, document id) pairs and ranks by score, then id.
    """
    from moee_pipeline.tasks.pairs import document_texts

    dataset: Any = view.dataset
    for subset in dataset.values():
        data = subset.get(split) if isinstance(subset, dict) else None
        if not data or data.get("corpus") is None:
            continue
        corpus = data["corpus"]
        rows = encoder.rows_for(document_texts(corpus), task_name=view.metadata.name, side=DOCUMENT)
        order = np.argsort(rows, kind="stable")
        if (order != np.arange(len(order))).any():
            data["corpus"] = corpus.select(order)


def evaluate_split(
    task: AbsTask, *, encoder: CachedEncoder, split: str, corpus_chunk_size: int | None = None
) -> tuple[TaskScore, TaskResult]:
    """Evaluate one split alone on a fresh private copy, exactly as its texts were recorded.

    With `corpus_chunk_size`, a retrieval task (mteb's `AbsTaskRetrieval`: Retrieval and
    Reranking) is searched by mteb's own `SearchEncoderWrapper` embedding that many documents
    at a time, its corpus in cache order (`_in_cache_order`); without it, mteb wraps the
    encoder itself (50,000 documents at a time). Returns the split's main score and mteb's
    TaskResult (for mteb's results folder, `score.results.save_split_result`); subsets are
    averaged as mteb does.
    """
    if not task.data_loaded:
        raise ValueError(f"task {task.metadata.name} has no data loaded")
    view = fresh_view(task)
    view.filter_eval_splits([split])
    model: CachedEncoder | SearchEncoderWrapper = encoder
    if corpus_chunk_size is not None and isinstance(view, AbsTaskRetrieval):
        _in_cache_order(view, split, encoder)
        model = SearchEncoderWrapper(encoder, corpus_chunk_size=corpus_chunk_size)
    result = _run_mteb(view, model)
    score = TaskScore(
        task=task.metadata.name,
        task_type=str(task.metadata.type),
        split=split,
        main_metric=str(task.metadata.main_score),
        main_score=float(result.get_score(splits=[split])),
    )
    return score, result
