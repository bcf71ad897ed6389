"""A `score.vectors.VectorSource` that records every lookup: what mteb asks a source for."""

from __future__ import annotations

import numpy as np

from moee_pipeline.score.vectors import VectorSource


class CountingVectors:
    """Wraps a source; `asked` holds the number of rows of each lookup, in order."""

    def __init__(self, inner: VectorSource) -> None:
        self.inner = inner
        self.asked: list[int] = []

    @property
    def rows(self) -> int:
        return self.inner.rows

    @property
    def dim(self) -> int:
        return self.inner.dim

    def take(self, rows: np.ndarray) -> np.ndarray:
        self.asked.append(len(rows))
        return self.inner.take(rows)
