"""Every error line the CLI prints is one short line: the path, one cause, what to do.

Runs each case of the bad-input catalogue (tests/cli/test_bad_input.py) again and measures the line
itself; that module checks what the line says and that nothing cached is lost.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from moee_pipeline.cli import main
from tests.cli.test_bad_input import CASES, Case, Context

#: The longest error line the CLI may print, "Error: " included.
MAX_LINE = 250


@pytest.mark.parametrize("case", CASES, ids=[c.what for c in CASES])
def test_each_error_line_is_short(case: Case, toy_cache: tuple[Path, Path], tmp_path: Path) -> None:
    model, cache = toy_cache
    result = CliRunner().invoke(main, case.command(Context(model=model, cache=cache, tmp=tmp_path)))
    errors = [line for line in result.output.splitlines() if line.startswith("Error:")]
    assert len(errors) == 1, result.output
    (line,) = errors
    assert len(line) <= MAX_LINE, f"{len(line)} characters: {line}"
