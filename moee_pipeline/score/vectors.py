"""Where the cached encoder gets the vectors of the rows mteb asks for: the one seam between a
configuration's embeddings and mteb's evaluators.

Scoring gives the encoder `score.embedder.ConfigRows`, which builds only the rows asked for
from the cached features; a retrieval corpus reaches the encoder in chunks (mteb's search
wrapper encodes the corpus `corpus_chunk_size` documents at a time), so no configuration's
embedding matrix of a whole corpus is ever made. A matrix in memory (`InMemoryVectors`) serves
tests and callers that have one.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

import numpy as np


@runtime_checkable
class VectorSource(Protocol):
    """The embedding of any cached row of one task under one configuration."""

    @property
    def rows(self) -> int:
        """How many cached rows there are (row numbers run from 0 to rows - 1)."""

    @property
    def dim(self) -> int:
        """The embedding width."""

    def take(self, rows: np.ndarray) -> np.ndarray:
        """The float32 (len(rows), dim) embeddings of the given row numbers, in their order."""


class InMemoryVectors:
    """A whole (rows, dim) embedding matrix in memory."""

    def __init__(self, matrix: np.ndarray) -> None:
        if matrix.ndim != 2:
            raise ValueError(f"an embedding matrix is 2-D, got shape {matrix.shape}")
        self._matrix = np.asarray(matrix, dtype=np.float32)

    @property
    def rows(self) -> int:
        return int(self._matrix.shape[0])

    @property
    def dim(self) -> int:
        return int(self._matrix.shape[1])

    def take(self, rows: np.ndarray) -> np.ndarray:
        return self._matrix[rows]


def as_source(vectors: np.ndarray | VectorSource) -> VectorSource:
    """A source for a matrix (held in memory) or the source itself."""
    return InMemoryVectors(vectors) if isinstance(vectors, np.ndarray) else vectors
