"""`moee score`: the CPU stage."""

from __future__ import annotations

from pathlib import Path

import click

from moee_pipeline.cache.store import cache_root
from moee_pipeline.cli.options import (
    USER_ERRORS,
    cache_dir_option,
    data_dir_option,
    model_option,
    one_line,
    prompts_option,
    resolve_model,
    split_csv,
    task_options,
)
from moee_pipeline.score.combine import METHODS, POOLINGS, RW_MODES, ZSCORE_MODES


@click.command()
@model_option
@prompts_option
@task_options(default_help="Default: every complete cached task.")
@click.option(
    "--method",
    "methods",
    multiple=True,
    type=click.Choice(METHODS),
    help="Repeatable; default all four.",
)
@click.option(
    "--weight",
    "weights",
    multiple=True,
    type=click.FloatRange(min=0),
    help="Weight of RW in MoEE-sum; repeatable (default 1.0).",
)
@click.option(
    "--rw",
    multiple=True,
    type=click.Choice(RW_MODES),
    help="Router logits or per-layer softmax; repeatable (default logits).",
)
@click.option(
    "--pooling",
    multiple=True,
    type=click.Choice(POOLINGS),
    help="Last-token or mean-pooled features; repeatable (default last).",
)
@click.option(
    "--layers",
    multiple=True,
    help="MoE-layer POSITIONS 0..n_moe_layers-1, e.g. 0-7 or 0,4,8; repeatable (default all).",
)
@click.option(
    "--zscore",
    multiple=True,
    type=click.Choice(ZSCORE_MODES),
    help="auto: z-score RW and MoEE parts; all: HS too; none: nothing. Repeatable.",
)
@click.option(
    "--split",
    "splits",
    multiple=True,
    help="Split(s) to score, repeatable (default test); e.g. --split test --split validation "
    "for `moee report --select-weight-on validation` (extract with --splits test,validation).",
)
@cache_dir_option
@data_dir_option
@click.option(
    "--output",
    type=click.Path(path_type=Path),
    default=Path("results"),
    show_default=True,
    help="Where scores.csv and mteb's JSON results go.",
)
def score(
    *,
    model: str,
    prompts: tuple[str, ...],
    tasks: str | None,
    task_types: str | None,
    methods: tuple[str, ...],
    weights: tuple[float, ...],
    rw: tuple[str, ...],
    pooling: tuple[str, ...],
    layers: tuple[str, ...],
    zscore: tuple[str, ...],
    splits: tuple[str, ...],
    cache_dir: str | None,
    data_dir: Path | None,
    output: Path,
) -> None:
    """Score cached features on MTEB (CPU only, no model): HS, RW, MoEE-concat, MoEE-sum."""
    from moee_pipeline.score import run as score_lib

    listed = split_csv(tasks)
    types = split_csv(task_types)
    config = score_lib.ScoreConfig(
        model=resolve_model(model),
        prompts=prompts,
        tasks=tuple(listed) if listed else None,
        task_types=tuple(types) if types else None,
        methods=methods or METHODS,
        weights=weights or (1.0,),
        rw=rw or ("logits",),
        pooling=pooling or ("last",),
        layers=layers or ("all",),
        zscore=zscore or ("auto",),
        splits=splits or ("test",),
        cache_dir=cache_root(cache_dir),
        data_dir=data_dir,
        output=output,
    )
    try:
        rows = score_lib.run_score(config)
    except USER_ERRORS as error:
        raise one_line(error) from error
    click.echo(score_lib.format_table(rows))
    click.echo(f"\n{len(rows)} scores -> {output / 'scores.csv'}")
