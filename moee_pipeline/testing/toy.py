"""Tiny built-in MTEB tasks of all six task types, generated in code.

They exist so that `make demo` and the tests can run extract + score end to end offline, in
seconds, through mteb's real evaluators. Sentences are built from per-topic word lists, so
embeddings that capture the topic score well and random embeddings score near chance.

`TOY_TASKS` is registered as the `toy` entry point of the `moee_pipeline.tasks` group
(pyproject.toml): that is how the task registry finds them, as it finds any package's tasks.
"""

from __future__ import annotations

import logging
import random
from typing import Any

from datasets import ClassLabel, Dataset, DatasetDict, Features, Value
from mteb.abstasks import AbsTask
from mteb.abstasks.classification import AbsTaskClassification
from mteb.abstasks.clustering import AbsTaskClustering
from mteb.abstasks.pair_classification import AbsTaskPairClassification
from mteb.abstasks.retrieval import AbsTaskRetrieval
from mteb.abstasks.retrieval_dataset_loaders import RetrievalSplitData
from mteb.abstasks.sts import AbsTaskSTS
from mteb.abstasks.task_metadata import TaskMetadata, TaskType
from mteb.abstasks.text.summarization import AbsTaskSummarization

logger = logging.getLogger(__name__)

# topic -> (subjects, verbs, objects, adjectives, places); immutable, so runs cannot drift.
_TOPICS: dict[str, tuple[tuple[str, ...], ...]] = {
    "sports": (
        ("the striker", "our coach", "the goalkeeper", "a young runner", "the team captain"),
        ("kicked", "trained with", "celebrated", "passed", "defended"),
        ("the ball", "the final match", "the trophy", "the penalty", "the league title"),
        ("fast", "tired", "victorious", "determined", "sweaty"),
        ("at the stadium", "on the football pitch"),
    ),
    "cooking": (
        ("the chef", "my grandmother", "a hungry student", "the baker", "the waiter"),
        ("baked", "seasoned", "tasted", "stirred", "served"),
        ("the soup", "fresh bread", "a spicy curry", "the chocolate cake", "garlic pasta"),
        ("delicious", "warm", "crispy", "salty", "sweet"),
        ("in the kitchen", "at the restaurant"),
    ),
    "weather": (
        ("the storm", "a cold wind", "the morning fog", "heavy rain", "the summer sun"),
        ("flooded", "covered", "cooled", "soaked", "warmed"),
        ("the valley", "the coastal town", "the mountains", "the fields", "the harbour"),
        ("cloudy", "freezing", "humid", "windy", "sunny"),
        ("during the forecast", "in the rainy season"),
    ),
    "music": (
        ("the guitarist", "a jazz singer", "the orchestra", "the drummer", "our band"),
        ("played", "recorded", "rehearsed", "composed", "performed"),
        ("a new album", "the symphony", "a slow ballad", "the concert", "an old melody"),
        ("loud", "melodic", "rhythmic", "acoustic", "catchy"),
        ("on the concert stage", "in the recording studio"),
    ),
}
TOPIC_NAMES: tuple[str, ...] = tuple(_TOPICS)
_SEED = 1234


def _sentence(rng: random.Random, topic: str) -> str:
    """One short English sentence whose words all come from one topic."""
    subjects, verbs, objects, adjectives, places = _TOPICS[topic]
    subject, verb, obj = rng.choice(subjects), rng.choice(verbs), rng.choice(objects)
    sentence = f"{subject} {verb} {obj} {rng.choice(places)}, and it felt {rng.choice(adjectives)}."
    return sentence[0].upper() + sentence[1:]


def _metadata(name: str, task_type: TaskType, main_score: str, description: str) -> TaskMetadata:
    """Valid TaskMetadata for a toy task (dataset path is a placeholder: data is built in code)."""
    return TaskMetadata(
        name=name,
        description=description,
        reference="https://arxiv.org/abs/2410.10814",
        dataset={"path": f"moee-pipeline/{name}", "revision": "1"},
        type=task_type,
        category="t2c" if task_type in {"Classification", "Clustering"} else "t2t",
        modalities=["text"],
        eval_splits=["test"],
        eval_langs=["eng-Latn"],
        main_score=main_score,
        date=("2024-01-01", "2024-12-31"),
        domains=["Written"],
        task_subtypes=[],
        license="cc-by-4.0",
        annotations_creators="derived",
        dialect=[],
        sample_creation="created",
        bibtex_citation="",
    )


class MoeeToySTS(AbsTaskSTS):
    """Sentence pairs scored 4-5 when they share a topic and 0-1 when they do not."""

    metadata = _metadata("MoeeToySTS", "STS", "cosine_spearman", "Toy STS over four topics.")
    min_score = 0
    max_score = 5

    def load_data(self, num_proc: int | None = None, **kwargs: Any) -> None:
        """Build 48 pairs in memory (no files, no network)."""
        if self.data_loaded:
            return
        rng = random.Random(_SEED)
        rows: dict[str, list[Any]] = {"sentence1": [], "sentence2": [], "score": []}
        for i in range(48):
            topic = TOPIC_NAMES[i % len(TOPIC_NAMES)]
            same = i % 3 != 0
            other = topic if same else TOPIC_NAMES[(i + 1 + i // 4) % len(TOPIC_NAMES)]
            if other == topic and not same:
                other = TOPIC_NAMES[(i + 1) % len(TOPIC_NAMES)]
            rows["sentence1"].append(_sentence(rng, topic))
            rows["sentence2"].append(_sentence(rng, other))
            rows["score"].append(round((4.0 if same else 0.0) + rng.random(), 2))
        self.dataset = DatasetDict({"test": Dataset.from_dict(rows)})
        self.dataset_transform()
        self.data_loaded = True


class MoeeToyClassification(AbsTaskClassification):
    """Topic classification with a train split for mteb's few-shot logistic regression."""

    metadata = _metadata(
        "MoeeToyClassification", "Classification", "accuracy", "Toy topic classification."
    )
    samples_per_label = 8
    n_experiments = 3

    def load_data(self, num_proc: int | None = None, **kwargs: Any) -> None:
        """Build 64 train and 40 test rows with a ClassLabel label column."""
        if self.data_loaded:
            return
        rng = random.Random(_SEED + 1)
        features = Features({"text": Value("string"), "label": ClassLabel(names=list(TOPIC_NAMES))})

        def split(n: int) -> Dataset:
            labels = [rng.randrange(len(TOPIC_NAMES)) for _ in range(n)]
            texts = [_sentence(rng, TOPIC_NAMES[label]) for label in labels]
            return Dataset.from_dict({"text": texts, "label": labels}, features=features)

        self.dataset = DatasetDict({"train": split(64), "test": split(40)})
        self.dataset_transform()
        self.data_loaded = True


class MoeeToyClustering(AbsTaskClustering):
    """Topic clustering; every document is embedded (no down-sampling) to keep it tiny and exact."""

    metadata = _metadata("MoeeToyClustering", "Clustering", "v_measure", "Toy topic clustering.")
    max_fraction_of_documents_to_embed = None
    n_clusters = 3
    max_documents_per_cluster = 60  # bootstrap sample size; mteb's default (16384) is slow here

    def load_data(self, num_proc: int | None = None, **kwargs: Any) -> None:
        """Build 60 sentences with their topic ids as cluster labels."""
        if self.data_loaded:
            return
        rng = random.Random(_SEED + 2)
        labels = [i % len(TOPIC_NAMES) for i in range(60)]
        texts = [_sentence(rng, TOPIC_NAMES[label]) for label in labels]
        self.dataset = DatasetDict(
            {"test": Dataset.from_dict({"sentences": texts, "labels": labels})}
        )
        self.dataset_transform()
        self.data_loaded = True


class MoeeToyPairClassification(AbsTaskPairClassification):
    """Pairs labelled 1 when both sentences share a topic, one row per pair."""

    metadata = _metadata(
        "MoeeToyPairClassification", "PairClassification", "max_ap", "Toy paraphrase detection."
    )

    def load_data(self, num_proc: int | None = None, **kwargs: Any) -> None:
        """Build 40 pairs, half positive."""
        if self.data_loaded:
            return
        rng = random.Random(_SEED + 3)
        rows: dict[str, list[Any]] = {"sentence1": [], "sentence2": [], "labels": []}
        for i in range(40):
            topic = TOPIC_NAMES[i % len(TOPIC_NAMES)]
            label = i % 2
            other = topic if label else TOPIC_NAMES[(i + 1) % len(TOPIC_NAMES)]
            rows["sentence1"].append(_sentence(rng, topic))
            rows["sentence2"].append(_sentence(rng, other))
            rows["labels"].append(label)
        self.dataset = DatasetDict({"test": Dataset.from_dict(rows)})
        self.dataset_transform()
        self.data_loaded = True


class MoeeToyReranking(AbsTaskRetrieval):
    """Reranking in mteb 2's retrieval format: each query re-ranks 6 candidates, 2 of its topic.

    Half the documents carry a title, so the texts mteb encodes ("title text") differ from the
    corpus column, which is what the text recorder in tasks.py must get right.
    """

    metadata = _metadata("MoeeToyReranking", "Reranking", "map_at_1000", "Toy topic reranking.")

    def load_data(self, num_proc: int | None = None, **kwargs: Any) -> None:
        """Build 12 queries, 72 candidate documents, qrels and top_ranked lists."""
        if self.data_loaded:
            return
        rng = random.Random(_SEED + 4)
        queries: dict[str, list[str]] = {"id": [], "text": []}
        corpus: dict[str, list[str]] = {"id": [], "title": [], "text": []}
        relevant_docs: dict[str, dict[str, int]] = {}
        top_ranked: dict[str, list[str]] = {}
        for q in range(12):
            topic = TOPIC_NAMES[q % len(TOPIC_NAMES)]
            qid = f"q{q}"
            queries["id"].append(qid)
            queries["text"].append(_sentence(rng, topic))
            candidates: list[str] = []
            relevant_docs[qid] = {}
            for d in range(6):
                relevant = d < 2
                doc_topic = topic if relevant else TOPIC_NAMES[(q + d) % len(TOPIC_NAMES)]
                if not relevant and doc_topic == topic:
                    doc_topic = TOPIC_NAMES[(q + d + 1) % len(TOPIC_NAMES)]
                did = f"d{q}_{d}"
                corpus["id"].append(did)
                corpus["title"].append(doc_topic.capitalize() if d % 2 else "")
                corpus["text"].append(_sentence(rng, doc_topic))
                relevant_docs[qid][did] = int(relevant)
                candidates.append(did)
            rng.shuffle(candidates)
            top_ranked[qid] = candidates
        split = RetrievalSplitData(
            corpus=Dataset.from_dict(corpus),
            queries=Dataset.from_dict(queries),
            relevant_docs=relevant_docs,
            top_ranked=top_ranked,
        )
        self.dataset = {"default": {"test": split}}
        self.dataset_transform()
        self.data_loaded = True


class MoeeToySummarization(AbsTaskSummarization):
    """Articles of one topic; machine summaries of the same topic are rated relevant."""

    metadata = _metadata(
        "MoeeToySummarization", "Summarization", "cosine_spearman", "Toy summary relevance."
    )
    min_score = 1
    max_score = 5

    def load_data(self, num_proc: int | None = None, **kwargs: Any) -> None:
        """Build 10 articles with 2 human and 6 machine summaries each."""
        if self.data_loaded:
            return
        rng = random.Random(_SEED + 5)
        rows: dict[str, list[Any]] = {
            "text": [],
            "human_summaries": [],
            "machine_summaries": [],
            "relevance": [],
        }
        for a in range(10):
            topic = TOPIC_NAMES[a % len(TOPIC_NAMES)]
            rows["text"].append(" ".join(_sentence(rng, topic) for _ in range(3)))
            rows["human_summaries"].append([_sentence(rng, topic) for _ in range(2)])
            machine, relevance = [], []
            for m in range(6):
                on_topic = m % 2 == 0
                other = topic if on_topic else TOPIC_NAMES[(a + m) % len(TOPIC_NAMES)]
                machine.append(_sentence(rng, other))
                relevance.append(round((4.0 if on_topic else 1.0) + rng.random(), 2))
            rows["machine_summaries"].append(machine)
            rows["relevance"].append(relevance)
        self.dataset = DatasetDict({"test": Dataset.from_dict(rows)})
        self.dataset_transform()
        self.data_loaded = True


TOY_TASKS: dict[str, type[AbsTask]] = {
    cls.metadata.name: cls
    for cls in (
        MoeeToySTS,
        MoeeToyClassification,
        MoeeToyClustering,
        MoeeToyPairClassification,
        MoeeToyReranking,
        MoeeToySummarization,
    )
}
