"""Command-line interface: each command parses options and calls library functions."""

from __future__ import annotations

import logging
import os
import tempfile
from pathlib import Path

import click

from moee_pipeline.cli.extract import extract, models
from moee_pipeline.cli.report import ls_command, report, verify_command
from moee_pipeline.cli.score import score


@click.group()
@click.option("-v", "--verbose", count=True, help="More logging (-v info, -vv debug).")
def main(verbose: int) -> None:
    """MoE router weights as embeddings: extract once on a GPU, score on MTEB on a CPU."""
    # mteb makes its results folder (~/.cache/mteb) on import; we never use it (cache=None)
    os.environ.setdefault("MTEB_CACHE", str(Path(tempfile.gettempdir()) / "moee-unused-mteb"))
    level = logging.WARNING - 10 * min(verbose, 2)
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s")
    # bitsandbytes warns on import that an optional CPU kernel package is absent
    logging.getLogger("bitsandbytes.backends.cpu.ops").setLevel(max(level, logging.ERROR))


for command in (extract, score, report, ls_command, verify_command, models):
    main.add_command(command)

__all__ = ["main"]
