"""Where the tests find the repository and the data beside it, wherever a test module sits."""

from __future__ import annotations

from pathlib import Path

#: The repository's root (this file is tests/support/paths.py).
ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"
#: ../shared: real MTEB data and the paper's numbers, present on the project's machines only.
SHARED = ROOT.parent / "shared"
