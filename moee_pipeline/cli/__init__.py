"""Command-line interface: each command parses options, calls library functions and prints what
they return; the library itself only logs (`moee_pipeline.verbosity`)."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import click

from moee_pipeline.cli.extract import extract, models
from moee_pipeline.cli.paper import paper
from moee_pipeline.cli.report import ls_command, report, verify_command
from moee_pipeline.cli.score import score
from moee_pipeline.verbosity import configure_logging


@click.group()
@click.option(
    "-v",
    "--verbose",
    count=True,
    help="More logging (-v info, -vv debug); -v also lets the libraries' progress bars and "
    "warnings through.",
)
def main(verbose: int) -> None:
    """MoE router weights as embeddings: extract once on a GPU, score on MTEB on a CPU."""
    # mteb makes its results folder (~/.cache/mteb) on import; we never use it (cache=None)
    os.environ.setdefault("MTEB_CACHE", str(Path(tempfile.gettempdir()) / "moee-unused-mteb"))
    configure_logging(verbose)


for command in (extract, score, report, paper, ls_command, verify_command, models):
    main.add_command(command)

__all__ = ["main"]
