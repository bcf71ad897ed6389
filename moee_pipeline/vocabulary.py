"""The words both stages, the reports and the CLI share, each defined once.

A choice is written once, as a `Literal` type; the tuple the CLI offers and the library checks
against is derived from it (`typing.get_args`), so a new pooling or method is one edit here.
Task types and the paper's tasks live here too: scoring, reports and the task registry order
tables by them, and none of those may import the others.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Final, Literal, get_args

if TYPE_CHECKING:  # mteb's Literal of task types, for the type checker only
    from mteb.abstasks.task_metadata import TaskType

#: How cached features become one embedding (README, "The math"), in the paper's table order.
Method = Literal["HS", "RW", "MoEE-concat", "MoEE-sum"]
METHODS: tuple[Method, ...] = get_args(Method)
HS, RW, CONCAT, SUM = METHODS

#: Router logits as cached, or a softmax per layer over its experts.
RwMode = Literal["logits", "softmax"]
RW_MODES: tuple[RwMode, ...] = get_args(RwMode)

#: Features at the last real token, or averaged over the real tokens.
Pooling = Literal["last", "mean"]
POOLINGS: tuple[Pooling, ...] = get_args(Pooling)

#: Which parts are z-scored: RW and the MoEE parts (auto), HS too (all), nothing (none).
ZscoreMode = Literal["auto", "all", "none"]
ZSCORE_MODES: tuple[ZscoreMode, ...] = get_args(ZscoreMode)

#: Which texts the z-score statistics come from: those a split's evaluation encodes, or all.
ZscoreFit = Literal["split", "task"]
ZSCORE_FITS: tuple[ZscoreFit, ...] = get_args(ZscoreFit)

#: How MoEE-sum's weight was set: given by the user, or the label-free rule.
WeightRule = Literal["fixed", "auto"]
WEIGHT_RULES: tuple[WeightRule, ...] = get_args(WeightRule)
FIXED, AUTO = WEIGHT_RULES

#: Where a stage runs its work: this machine, or a Ray cluster (the `[ray]` extra).
Engine = Literal["local", "ray"]
ENGINES: tuple[Engine, ...] = get_args(Engine)

#: The largest MoEE-sum weight. The packed vector's RW half has norm sqrt(w), so float32 dot
#: products of size ~w must still resolve the HS term (range 2): measured at 1e6 they miss it by
#: up to 0.19, at 1e4 by about 0.002 (tests/test_score.py). The auto rule searches [0.01, 100].
MAX_WEIGHT: Final = 1e4


def format_weight(weight: float) -> str:
    """A weight as every table, file and experiment name writes it: `1`, `0.5`, `2.5e-05`."""
    return format(weight, ".10g")


def check_choice(what: str, value: object, allowed: Sequence[str]) -> None:
    """Refuse a value outside its choices with one line naming them (ValueError)."""
    if value not in allowed:
        raise ValueError(f"unknown {what} {value!r}: choose from {', '.join(allowed)}")


def check_weight(weight: float) -> float:
    """A MoEE-sum weight the arithmetic can hold, or ValueError saying what is allowed."""
    if not math.isfinite(weight) or not 0 <= weight <= MAX_WEIGHT:
        raise ValueError(f"weight {weight!r}: use a number from 0 to {format_weight(MAX_WEIGHT)}")
    return float(weight)


#: The paper's six task types, in the order of its tables (every table and report uses it;
#: the paper's Average is the mean of these six types' means, `paper_average`).
TASK_TYPES: tuple[TaskType, ...] = (
    "STS",
    "Classification",
    "PairClassification",
    "Clustering",
    "Reranking",
    "Summarization",
)
RETRIEVAL: Final[TaskType] = "Retrieval"
#: Every task type both stages take: the paper's six, then Retrieval (a column of its own in
#: tables, after the six, and never part of the paper's Average).
SUPPORTED_TASK_TYPES: tuple[TaskType, ...] = (*TASK_TYPES, RETRIEVAL)

#: How mteb encodes a text of a retrieval-style task (its `prompt_type`): a query, or a
#: document of the corpus. A text encoded as both is one row under one template and two rows
#: under two (`--query-prompt`, `--document-prompt`).
Side = Literal["query", "document"]
SIDES: tuple[Side, ...] = get_args(Side)
QUERY, DOCUMENT = SIDES

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


def type_rank(task_type: str) -> int:
    """Position of a task type in tables: the paper's six first, then Retrieval, then others."""
    known = SUPPORTED_TASK_TYPES
    return known.index(task_type) if task_type in known else len(known)


def task_type_means(scores: Iterable[tuple[str, float]]) -> dict[str, float]:
    """The mean score of each task type, from (task type, task score) pairs, in table order.

    A type's mean weighs its tasks equally, as the paper's tables do.
    """
    by_type: dict[str, list[float]] = {}
    for task_type, score in scores:
        by_type.setdefault(task_type, []).append(float(score))
    ordered = sorted(by_type, key=lambda t: (type_rank(t), t))
    return {t: math.fsum(by_type[t]) / len(by_type[t]) for t in ordered}


#: What tables call `paper_average`: the paper's Average, its six types only.
PAPER_AVERAGE_LABEL: Final = "Avg of the paper's 6 types"


def paper_average(type_means: Mapping[str, float]) -> float:
    """The paper's headline number: the mean of its six task types' means (others left out).

    NaN when none of the six was scored, or when one of their means is NaN (a task without a
    score): never an average of fewer types that passes for the whole.
    """
    means = [v for t, v in type_means.items() if t in TASK_TYPES]
    return math.fsum(means) / len(means) if means else math.nan
