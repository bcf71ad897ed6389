"""`moee score`: the CPU stage."""

from __future__ import annotations

import math
from pathlib import Path

import click

from moee_pipeline.cache.layout import cache_root
from moee_pipeline.cli.options import (
    USER_ERRORS,
    Folder,
    cache_dir_option,
    data_dir_option,
    engine_option,
    model_option,
    one_line,
    prompts_option,
    ray_address_option,
    resolve_model,
    split_csv,
    task_options,
)
from moee_pipeline.score.combine import METHODS, POOLINGS, RW_MODES, ZSCORE_MODES


def parse_weights(values: tuple[str, ...]) -> tuple[tuple[float, ...], bool]:
    """--weight values -> (fixed weights, whether `auto` was asked for); bad values are one line."""
    fixed: list[float] = []
    auto = False
    for value in values:
        if value.strip().lower() == "auto":
            auto = True
            continue
        try:
            number = float(value)
        except ValueError:
            number = float("nan")
        if not math.isfinite(number) or number < 0:
            raise click.BadParameter(
                f"{value!r}: use a number >= 0 or `auto`", param_hint="'--weight'"
            )
        fixed.append(number)
    return tuple(dict.fromkeys(fixed)), auto


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
    help="Weight of RW in MoEE-sum (a number >= 0) or `auto` (the label-free rule); "
    "repeatable (default 1.0).",
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
@click.option(
    "--zscore-fit",
    type=click.Choice(["split", "task"]),
    default="split",
    show_default=True,
    help="Fit z-score statistics on the texts each split's evaluation encodes (split) or on "
    "every cached text of the task (task, the old behaviour).",
)
@cache_dir_option
@data_dir_option
@click.option(
    "--output",
    type=Folder(path_type=Path),
    default=Path("results"),
    show_default=True,
    help="Where scores.csv and mteb's JSON results go.",
)
@click.option(
    "--workers",
    default=1,
    show_default=True,
    type=click.IntRange(min=1),
    help="(task, prompt) units scored at once, in processes (or Ray tasks with --engine ray).",
)
@engine_option(local_help="processes on this machine")
@ray_address_option
def score(
    *,
    model: str,
    prompts: tuple[str, ...],
    tasks: str | None,
    task_types: str | None,
    methods: tuple[str, ...],
    weights: tuple[str, ...],
    rw: tuple[str, ...],
    pooling: tuple[str, ...],
    layers: tuple[str, ...],
    zscore: tuple[str, ...],
    splits: tuple[str, ...],
    zscore_fit: str,
    cache_dir: str | None,
    data_dir: Path | None,
    output: Path,
    workers: int,
    engine: str,
    ray_address: str | None,
) -> None:
    """Score cached features on MTEB (CPU only, no model): HS, RW, MoEE-concat, MoEE-sum."""
    from moee_pipeline.score import run as score_lib

    if ray_address and engine != "ray":
        raise click.UsageError("--ray-address needs --engine ray")
    fixed, auto = parse_weights(weights)
    listed = split_csv(tasks)
    types = split_csv(task_types)
    config = score_lib.ScoreConfig(
        model=resolve_model(model),
        prompts=prompts,
        tasks=tuple(listed) if listed else None,
        task_types=tuple(types) if types else None,
        methods=methods or METHODS,
        weights=fixed if fixed or auto else (1.0,),
        auto_weight=auto,
        rw=rw or ("logits",),
        pooling=pooling or ("last",),
        layers=layers or ("all",),
        zscore=zscore or ("auto",),
        splits=splits or ("test",),
        zscore_fit=zscore_fit,
        cache_dir=cache_root(cache_dir),
        data_dir=data_dir,
        output=output,
        workers=workers,
        engine=engine,
        ray_address=ray_address,
    )
    try:
        rows = score_lib.run_score(config)
    except USER_ERRORS as error:
        raise one_line(error) from error
    click.echo(score_lib.format_table(rows))
    click.echo(f"\n{len(rows)} scores -> {output / 'scores.csv'}")
