"""The text pairs a split's evaluation compares, for the task types whose score is a pair score.

STS and PairClassification score one similarity per row (sentence1, sentence2); Summarization
scores every machine summary of a text against every human summary of the same text. The other
types (Classification, Clustering, Reranking) compare no fixed pairs: callers sample pairs of the
texts the split encodes instead. Only text columns are read, never a label or a gold score.

Retrieval compares every query with every document, too many pairs to rank; its rule pairs each
query the evaluation encodes with `DOCS_PER_QUERY` documents drawn with a fixed seed
(`retrieval_pairs`). It reads no relevance: the qrels only say which queries mteb evaluates at
all (it drops queries without any judged document before it encodes), never which documents.
"""

from __future__ import annotations

import itertools
from typing import Any

import numpy as np
from datasets import Dataset
from mteb.abstasks import AbsTask
from mteb.abstasks.pair_classification import AbsTaskPairClassification
from mteb.abstasks.retrieval import AbsTaskRetrieval
from mteb.abstasks.sts import AbsTaskSTS
from mteb.abstasks.text.summarization import AbsTaskSummarization

from moee_pipeline.tasks.registry import TaskError
from moee_pipeline.vocabulary import RETRIEVAL

PAIR_TYPES: tuple[str, ...] = ("STS", "PairClassification", "Summarization", RETRIEVAL)

#: Retrieval's pair rule: documents per query, the most pairs in all, the draw's seed.
DOCS_PER_QUERY = 32
MAX_RETRIEVAL_PAIRS = 10_000
RETRIEVAL_SEED = 0


def _split_data(task: AbsTask, split: str) -> list[Any]:
    """The split's dataset in every evaluated subset."""
    dataset: Any = task.dataset
    subsets = [dataset[s] for s in task.hf_subsets if s in dataset]
    return [d[split] for d in (subsets or [dataset]) if split in d]


def _column(data: Any, name: Any, task: str) -> list[Any]:
    if not isinstance(name, str):
        raise TaskError(f"{task}: pair column {name!r} is not a plain text column")
    return list(data[name])


def document_texts(corpus: Any) -> list[str]:
    """The corpus documents as mteb's search encodes them: `(title + " " + text).strip()`."""
    texts = list(corpus["text"])
    if "title" not in corpus.column_names:
        return [t.strip() for t in texts]
    return [
        (title + " " + text).strip() for title, text in zip(corpus["title"], texts, strict=True)
    ]


def retrieval_pairs(task: AbsTask, split: str) -> list[tuple[str, str]]:
    """Each evaluated query with `DOCS_PER_QUERY` seeded documents (fewer when the corpus is
    smaller, or when more queries would pass `MAX_RETRIEVAL_PAIRS`; at most that many queries,
    drawn with the same seed). Query order is the split's; the draw depends on nothing but the
    numbers of queries and documents, so shuffled or changed relevance gives the same pairs."""
    rng = np.random.default_rng(RETRIEVAL_SEED)
    out: list[tuple[str, str]] = []
    for data in _split_data(task, split):
        judged = data["relevant_docs"]  # which queries mteb keeps, never which documents
        queries = [
            t
            for q, t in zip(data["queries"]["id"], data["queries"]["text"], strict=True)
            if judged.get(q)
        ]
        documents = document_texts(data["corpus"])
        if not queries or not documents:
            continue
        if len(queries) > MAX_RETRIEVAL_PAIRS:
            keep = np.sort(rng.choice(len(queries), MAX_RETRIEVAL_PAIRS, replace=False))
            queries = [queries[i] for i in keep]
        k = max(1, min(DOCS_PER_QUERY, len(documents), MAX_RETRIEVAL_PAIRS // len(queries)))
        for query in queries:
            out.extend((query, documents[j]) for j in rng.choice(len(documents), k, replace=False))
    return out


def evaluation_pairs(task: AbsTask, split: str) -> list[tuple[str, str]] | None:
    """The (text, text) pairs the split's evaluation scores (for Retrieval, the rule's sample:
    `retrieval_pairs`); None for types without fixed pairs."""
    name = task.metadata.name
    if isinstance(task, AbsTaskRetrieval) and task.metadata.type == RETRIEVAL:
        return retrieval_pairs(task, split)
    out: list[tuple[str, str]] = []
    for data in _split_data(task, split):
        if isinstance(task, AbsTaskSTS):
            first, second = task.column_names[0], task.column_names[1]
            out.extend(zip(_column(data, first, name), _column(data, second, name), strict=True))
        elif isinstance(task, AbsTaskPairClassification):
            # v1 datasets hold all pairs in one row of lists, as mteb's own evaluation unpacks them
            rows = Dataset.from_dict(data[0]) if len(data) == 1 else data
            left = _column(rows, task.input1_column_name, name)
            right = _column(rows, task.input2_column_name, name)
            out.extend(zip(left, right, strict=True))
        elif isinstance(task, AbsTaskSummarization):
            machine = data[task.machine_summaries_column_name]
            human = data[task.human_summaries_column_name]
            for ours, theirs in zip(machine, human, strict=True):
                out.extend(itertools.product(ours, theirs))
        else:
            return None
    return out
