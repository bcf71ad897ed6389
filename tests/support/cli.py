"""`moee ...` run in this process with click's test runner, as a user would type it."""

from __future__ import annotations

from click.testing import CliRunner

from moee_pipeline.cli import main


def cli(*args: str) -> tuple[int, str]:
    """`moee <args>`: its exit code and output (stdout and stderr together)."""
    result = CliRunner().invoke(main, list(args))
    return result.exit_code, result.output


def cli_ok(*args: str) -> str:
    """`moee <args>` that must succeed: its output (a failure shows the output it gave)."""
    code, output = cli(*args)
    assert code == 0, output
    return output
