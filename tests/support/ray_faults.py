"""Faults for the Ray engine's tests: feature extractors (Ray actors) that die or fail mid-run.

The classes subclass the engine's actor and are made by factories: a class defined inside a
function is not importable by name, so cloudpickle ships it to Ray's workers by value (with the
marker folder it closes over), and the workers never need to import this test module. Keep
everything they use inside the factory or in the standard library and moee_pipeline.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

import numpy as np

from moee_pipeline.extract.ray_actor import FeatureExtractor


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


def failing_extractor(part_dir: Path, *, wait_s: float = 120.0) -> type[FeatureExtractor]:
    """An extractor that raises once the driver has written a part: Ray does not retry it.

    Its first block runs normally; every later call waits until a complete part file is in
    `part_dir` (so the run provably fails after writing something), then raises.
    """

    class FailingExtractor(FeatureExtractor):
        def __init__(self, **kwargs: Any) -> None:
            super().__init__(**kwargs)
            self.calls = 0

        def __call__(self, block: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
            self.calls += 1
            if self.calls == 1:
                return super().__call__(block)
            deadline = time.monotonic() + wait_s
            while not any(part_dir.glob("part-*.parquet")) and time.monotonic() < deadline:
                time.sleep(0.1)
            raise RuntimeError("injected failure")

    return FailingExtractor
