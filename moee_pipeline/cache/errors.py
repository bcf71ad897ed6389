"""What goes wrong in a cache, said once for every reader: `read_features`, `moee verify`, `ls`.

A file that cannot be used is a `FileProblem`: its path, what is wrong with it and what to do.
Readers raise it; `moee verify` collects the same objects as its report lines, so the scorer and
the auditor name one damaged file with one message.
"""

from __future__ import annotations

from pathlib import Path

from moee_pipeline.errors import MoeeError

#: What to do about a damaged entry, said by every error that finds one.
REPAIR_HINT = "run `moee verify --repair`, then `moee extract`"


class CacheError(MoeeError):
    """A cache entry is missing, incomplete or inconsistent; the message says what to run."""


class FileProblem(CacheError):
    """One file of the cache that cannot be used as it is.

    `what` reads after the path ("does not match its SHA-256 ..."); `repairable` says whether
    moving the file aside (`moee verify --repair`) and re-extracting mends it; when it does not
    (a cache from a newer version), `fix` says what does.
    """

    def __init__(self, path: Path, what: str, *, fix: str = REPAIR_HINT) -> None:
        super().__init__(f"{path} {what}: {fix}")
        self.path = Path(path)
        self.what = what
        self.fix = fix

    @property
    def repairable(self) -> bool:
        """Whether `moee verify --repair` and a rerun of `moee extract` mend it."""
        return self.fix == REPAIR_HINT
