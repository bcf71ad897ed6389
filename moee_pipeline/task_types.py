"""The task vocabulary both stages and the reports share, without importing mteb."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:  # mteb's Literal of task types, for the type checker only
    from mteb.abstasks.task_metadata import TaskType

#: The six task types, in the order of the paper's tables (every table and report uses it).
TASK_TYPES: tuple[TaskType, ...] = (
    "STS",
    "Classification",
    "PairClassification",
    "Clustering",
    "Reranking",
    "Summarization",
)

#: The paper's 19 tasks and their types.
PAPER_TASKS: dict[str, TaskType] = {
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
