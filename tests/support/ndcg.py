"""The independent check of retrieval scores: nDCG@10 by brute force in NumPy (cosine ranking
of every document, gains from the qrels, ideal DCG from the query's own relevant documents, as
trec_eval's ndcg_cut_10 that mteb runs through pytrec_eval)."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

import numpy as np


def ndcg_at_10(
    queries: Mapping[str, str],
    documents: Mapping[str, str],
    relevant: Mapping[str, Mapping[str, int]],
    vector: Callable[[Sequence[str]], np.ndarray],
) -> float:
    """Mean nDCG@10 over the queries with a judged document.

    Args:
        queries: query id -> text; documents: document id -> text as mteb builds it.
        relevant: query id -> {document id: grade}.
        vector: the (n, dim) vectors of a list of texts.
    """
    qids = [q for q in queries if relevant.get(q)]
    dids = list(documents)

    def unit(texts: Sequence[str]) -> np.ndarray:
        x = np.asarray(vector(texts), dtype=np.float64)
        return x / np.linalg.norm(x, axis=1, keepdims=True)

    q = unit([queries[i] for i in qids])
    d = unit([documents[i] for i in dids])
    discounts = 1.0 / np.log2(np.arange(2, 12))
    values = []
    for i, qid in enumerate(qids):
        top = np.argsort(-(d @ q[i]), kind="stable")[:10]
        gains = np.array([relevant[qid].get(dids[j], 0) for j in top], dtype=np.float64)
        ideal = np.sort(np.array(list(relevant[qid].values()), dtype=np.float64))[::-1][:10]
        dcg = (gains * discounts[: len(gains)]).sum()
        values.append(dcg / (ideal * discounts[: len(ideal)]).sum())
    return float(np.mean(values))
