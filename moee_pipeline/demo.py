"""`make demo`: the whole pipeline offline, on a tiny random MoE model and the built-in toy tasks.

It runs the steps of `moee paper` (`make paper`: extract with every layer's hidden states,
score the paper's grid, report beside the paper's numbers as markdown, HTML and figures), the
commands a user runs on a GPU box and a laptop, printing each one first, so the output doubles
as a walkthrough: our progress bars and results only, as `moee` shows them without -v.
Everything lands in ./demo-output/ (the report in demo-output/paper/).
"""

from __future__ import annotations

import logging
import shlex
import shutil
import time
from pathlib import Path

import click

from moee_pipeline.cli import main as cli
from moee_pipeline.cli.paper import PaperRun, run_paper
from moee_pipeline.testing.tiny import build_tiny_model, train_tokenizer
from moee_pipeline.verbosity import configure_logging

logger = logging.getLogger(__name__)

TOY_TASKS = (
    "MoeeToySTS",
    "MoeeToyClassification",
    "MoeeToyClustering",
    "MoeeToyPairClassification",
    "MoeeToyReranking",
    "MoeeToySummarization",
)


def _run(args: list[str]) -> None:
    click.secho(f"\n$ moee {shlex.join(args)}", bold=True)
    cli.main(args=args, prog_name="moee", standalone_mode=False)


def _show_cache(cache: Path) -> None:
    """Show, then run, what a user would type to look at the cache with pandas."""
    code = (
        "import pandas as pd\n"
        f"df = pd.read_parquet('{cache}/features', filters=[('task', '=', 'MoeeToySTS')])\n"
        "print(df[['prompt', 'text', 'n_tokens', 'truncated']].head(3))\n"
        "print('widths:', len(df.rw_last.iloc[0]), len(df.hs_last.iloc[0]))"
    )
    click.secho("\n$ python  # reading the cache with pandas", bold=True)
    click.echo(code)
    exec(compile(code, "demo", "exec"), {})


def run_demo(workdir: Path) -> None:
    """Build the tiny model, extract, inspect, score and report."""
    start = time.perf_counter()
    if workdir.exists():
        shutil.rmtree(workdir)
    model = workdir / "tiny-olmoe"
    cache = workdir / "cache"
    click.secho("Building a tiny random OLMoE-style model and tokenizer (offline)...", bold=True)
    train_tokenizer(workdir / "tokenizer")
    build_tiny_model("olmoe", model, tokenizer_dir=workdir / "tokenizer")
    # the steps of `moee paper` (make paper), on the toy tasks with one fixed weight; they have
    # no validation split, so the report shows MoEE-sum at the label-free weight
    run = PaperRun(
        model=str(model),
        out=workdir / "paper",
        tasks=TOY_TASKS,
        weights=(1.0,),
        cache_dir=cache,
        pick_weight="auto",
    )
    run_paper(run, _run)
    _show_cache(cache)
    _run(["ls", "--cache-dir", str(cache)])
    click.secho(
        f"\nDemo finished in {time.perf_counter() - start:.1f} s; files in {workdir}/", bold=True
    )


def main() -> None:
    configure_logging(0)  # as `moee` without -v: our progress and results only
    run_demo(Path("demo-output"))


if __name__ == "__main__":
    main()
