"""`moee score`: the CPU stage."""

from __future__ import annotations

from pathlib import Path

import click

from moee_pipeline.cache.store import cache_root
from moee_pipeline.cli.options import (
    DEFAULT_MODEL,
    USER_ERRORS,
    cache_dir_option,
    one_line,
    split_csv,
)


@click.command()
@click.option(
    "--model",
    default=DEFAULT_MODEL,
    show_default=True,
    help="Model id, folder or alias, as given to `moee extract`.",
)
@click.option(
    "--prompt",
    "prompts",
    multiple=True,
    default=("none",),
    show_default=True,
    help="Prompt name, template or cache id (custom-xxxxxxxx); repeatable.",
)
@click.option("--tasks", default=None, help="Comma-separated task names (default: all cached).")
@click.option("--task-types", default=None, help="Comma-separated task types to keep.")
@click.option(
    "--method",
    "methods",
    multiple=True,
    type=click.Choice(["HS", "RW", "MoEE-concat", "MoEE-sum"]),
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
    type=click.Choice(["logits", "softmax"]),
    help="Router logits or per-layer softmax; repeatable (default logits).",
)
@click.option(
    "--pooling",
    multiple=True,
    type=click.Choice(["last", "mean"]),
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
    type=click.Choice(["auto", "all", "none"]),
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
@click.option(
    "--data-dir",
    type=click.Path(path_type=Path),
    default=None,
    help="Task data <DIR>/<Task>/<split>.parquet, if the cache holds no task snapshot.",
)
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
    from moee_pipeline.models.catalog import resolve_model
    from moee_pipeline.score import run as score_lib

    listed = split_csv(tasks)
    types = split_csv(task_types)
    config = score_lib.ScoreConfig(
        model=resolve_model(model),
        prompts=prompts,
        tasks=tuple(listed) if listed else None,
        task_types=tuple(types) if types else None,
        methods=methods or score_lib.METHODS,
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
