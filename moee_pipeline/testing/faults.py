"""Fault injection for the scale-out tests: Ray feature extractors that die or fail mid-run.

The classes are made by factories, so that Ray ships them to its workers by value, with the
marker folder they close over.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from moee_pipeline.extract.ray_engine import FeatureExtractor


def dying_extractor(marker_dir: Path, *, on_call: int = 2) -> type[FeatureExtractor]:
    """An extractor whose process exits (as a crash or an OOM kill would) once per run.

    The first actor to reach its `on_call`-th block dies, leaving a marker file; the actor Ray
    restarts in its place (model loaded again) and every other actor then run normally.
    """
    marker = Path(marker_dir) / "died"

    class DyingExtractor(FeatureExtractor):
        def __init__(self, **kwargs: Any) -> None:
            super().__init__(**kwargs)
            self.calls = 0

        def __call__(self, block: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
            self.calls += 1
            if self.calls == on_call and not marker.exists():
                marker.touch()
                os._exit(1)
            return super().__call__(block)

    return DyingExtractor


def failing_extractor(*, on_call: int = 3) -> type[FeatureExtractor]:
    """An extractor that raises on its `on_call`-th block: Ray does not retry it, the run stops."""

    class FailingExtractor(FeatureExtractor):
        def __init__(self, **kwargs: Any) -> None:
            super().__init__(**kwargs)
            self.calls = 0

        def __call__(self, block: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
            self.calls += 1
            if self.calls == on_call:
                raise RuntimeError("injected failure")
            return super().__call__(block)

    return FailingExtractor
