"""scores.csv as the tests read it: through the package's own reader, never by hand."""

from __future__ import annotations

from pathlib import Path

from moee_pipeline.cache.scores import SCORES_FILE, read_rows


def read_scores(path: Path) -> list[dict[str, str]]:
    """The rows of `path` (a scores.csv, or the results folder holding one), which must exist.

    `read_rows` returns no rows for a missing file (a first run merges into nothing); a test
    reading what a run wrote wants the file to be there.
    """
    file = path / SCORES_FILE if path.is_dir() else path
    assert file.is_file(), f"{file} was not written"
    return read_rows(file)
