"""Guards for what several tests share: a folder handed out read-only stays as it was built.

A fixture built once per session or module and shared by its tests is only safe while no test
writes into it; `unchanged` checks that when the fixture is torn down, so a test that writes
fails loudly (naming what it changed) instead of changing what later tests see.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


def tree_state(root: Path) -> dict[str, tuple[int, int]]:
    """Every file under `root` (relative path) with its size and modification time."""
    return {
        str(path.relative_to(root)): (path.stat().st_size, path.stat().st_mtime_ns)
        for path in sorted(root.rglob("*"))
        if path.is_file()
    }


@contextmanager
def unchanged(root: Path, what: str) -> Iterator[Path]:
    """Yield `root`; on exit, fail if any file under it was added, removed or rewritten."""
    before = tree_state(root)
    yield root
    after = tree_state(root)
    changed = sorted(
        name for name in before.keys() | after.keys() if before.get(name) != after.get(name)
    )
    assert not changed, f"a test changed {what} ({root}): {changed[:5]}; write to a copy"
