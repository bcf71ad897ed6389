"""Two tiny in-code Retrieval tasks that share one corpus, for the tests of retrieval
extraction (a corpus two tasks share is extracted once; the Ray engine gives the local rows).

Both hold the same 24 documents (half with a title, so what mteb encodes, "title text",
differs from the text column) and 8 queries of their own; one query of each is also a corpus
document's text, so a text that is both a query and a document is in the data. Registered as
the `toy-retrieval` entry point of `moee_pipeline.tasks` (pyproject.toml), beside the six toys.
"""

from __future__ import annotations

import random
from typing import Any

from datasets import Dataset
from mteb.abstasks import AbsTask
from mteb.abstasks.retrieval import AbsTaskRetrieval
from mteb.abstasks.retrieval_dataset_loaders import RetrievalSplitData

from moee_pipeline.testing.toy import TOPIC_NAMES, _metadata, _sentence

_SEED = 4321


def toy_corpus() -> dict[str, list[str]]:
    """The shared corpus: 6 documents per topic, every second one with a title."""
    rng = random.Random(_SEED)
    corpus: dict[str, list[str]] = {"id": [], "title": [], "text": []}
    for i in range(24):
        topic = TOPIC_NAMES[i % len(TOPIC_NAMES)]
        corpus["id"].append(f"doc{i}")
        corpus["title"].append(topic.capitalize() if i % 2 else "")
        corpus["text"].append(_sentence(rng, topic))
    return corpus


class _ToyRetrieval(AbsTaskRetrieval):
    """Queries of one topic; the corpus documents of that topic are relevant."""

    query_seed = 0

    def load_data(self, num_proc: int | None = None, **kwargs: Any) -> None:
        """Build 8 queries (the last one a document's own text) against the shared corpus."""
        if self.data_loaded:
            return
        rng = random.Random(_SEED + self.query_seed)
        corpus = toy_corpus()
        queries: dict[str, list[str]] = {"id": [], "text": []}
        relevant: dict[str, dict[str, int]] = {}
        for q in range(8):
            topic = TOPIC_NAMES[(q + self.query_seed) % len(TOPIC_NAMES)]
            qid = f"q{q}"
            queries["id"].append(qid)
            # a title-less document's text (doc0 is sports, no title) is also a query
            queries["text"].append(corpus["text"][0] if q == 7 else _sentence(rng, topic))
            if q == 7:
                topic = TOPIC_NAMES[0]
            relevant[qid] = {
                did: 1
                for i, did in enumerate(corpus["id"])
                if TOPIC_NAMES[i % len(TOPIC_NAMES)] == topic
            }
        split = RetrievalSplitData(
            corpus=Dataset.from_dict(corpus),
            queries=Dataset.from_dict(queries),
            relevant_docs=relevant,
            top_ranked=None,
        )
        self.dataset = {"default": {"test": split}}
        self.dataset_transform()
        self.data_loaded = True


class MoeeToyRetrieval(_ToyRetrieval):
    """The first of the two tasks sharing the toy corpus."""

    metadata = _metadata("MoeeToyRetrieval", "Retrieval", "ndcg_at_10", "Toy topic retrieval.")
    query_seed = 1


class MoeeToyRetrievalShared(_ToyRetrieval):
    """The second: other queries, the same corpus."""

    metadata = _metadata(
        "MoeeToyRetrievalShared", "Retrieval", "ndcg_at_10", "Toy retrieval, shared corpus."
    )
    query_seed = 2


TOY_RETRIEVAL_TASKS: dict[str, type[AbsTask]] = {
    cls.metadata.name: cls for cls in (MoeeToyRetrieval, MoeeToyRetrievalShared)
}
