"""`moee score`: the CPU stage. Option defaults and choices come from `ScoreConfig` and the
vocabulary; the one value parsed here is the weight (a number, or `auto`)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from moee_pipeline.cache.layout import cache_root
from moee_pipeline.cache.scores import SCORES_FILE
from moee_pipeline.cli.options import (
    USER_ERRORS,
    Folder,
    cache_dir_option,
    chosen_tasks,
    data_dir_option,
    engine_option,
    fit_line,
    model_option,
    one_line,
    prompts_option,
    ray_address_option,
    resolve_model,
    side_prompt_options,
    split_csv,
    task_options,
)
from moee_pipeline.score.config import ScoreConfig, default
from moee_pipeline.vocabulary import (
    AUTO,
    MAX_WEIGHT,
    METHODS,
    POOLINGS,
    RW_MODES,
    ZSCORE_FITS,
    ZSCORE_MODES,
    Engine,
    Method,
    Pooling,
    RwMode,
    WeightRule,
    ZscoreFit,
    ZscoreMode,
    check_weight,
    format_weight,
)

if TYPE_CHECKING:
    from moee_pipeline.score.rows import ScoreRow


class WeightType(click.ParamType):
    """A --weight value: a float MoEE-sum can hold (`check_weight`), or `auto`."""

    name = "weight"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        """The float (or AUTO) the config takes; anything else is one line saying what to use."""
        if isinstance(value, str) and value.strip().lower() == AUTO:
            return AUTO
        try:
            return check_weight(float(value))
        except ValueError:
            self.fail(
                f"{value!r}: use a number >= 0 or `{AUTO}` (at most {format_weight(MAX_WEIGHT)})",
                param,
                ctx,
            )


def split_weights(values: tuple[float | WeightRule, ...]) -> tuple[tuple[float, ...], bool]:
    """Parsed --weight values -> (fixed weights, each once, whether `auto` was asked for)."""
    fixed = tuple(dict.fromkeys(v for v in values if isinstance(v, float)))
    return fixed, AUTO in values


@click.command()
@model_option
@prompts_option
@side_prompt_options
@task_options(default_help="Default: every complete cached task.")
@click.option(
    "--method",
    "methods",
    multiple=True,
    type=click.Choice(METHODS),
    default=default("methods"),
    show_default=True,
    help="Repeatable.",
)
@click.option(
    "--weight",
    "weights",
    multiple=True,
    type=WeightType(),
    default=default("weights"),
    show_default=True,
    help="Weight of RW in MoEE-sum (a number >= 0) or `auto` (the label-free rule); repeatable.",
)
@click.option(
    "--rw",
    multiple=True,
    type=click.Choice(RW_MODES),
    default=default("rw"),
    show_default=True,
    help="Router logits or per-layer softmax; repeatable.",
)
@click.option(
    "--pooling",
    multiple=True,
    type=click.Choice(POOLINGS),
    default=default("pooling"),
    show_default=True,
    help="Last-token or mean-pooled features; repeatable.",
)
@click.option(
    "--layers",
    multiple=True,
    default=default("layers"),
    show_default=True,
    help="MoE-layer POSITIONS 0..n_moe_layers-1, e.g. 0-7 or 0,4,8; repeatable.",
)
@click.option(
    "--hs-layers",
    multiple=True,
    default=default("hs_layers"),
    show_default=True,
    help="Hidden states of: last (the last layer), all, or decoder-layer POSITIONS "
    "0..n_layers-1 (concatenated in layer order; needs `moee extract --hs-layers all`); "
    "repeatable.",
)
@click.option(
    "--zscore",
    multiple=True,
    type=click.Choice(ZSCORE_MODES),
    default=default("zscore"),
    show_default=True,
    help="auto: z-score RW and MoEE parts; all: HS too; none: nothing. Repeatable.",
)
@click.option(
    "--split",
    "splits",
    multiple=True,
    default=default("splits"),
    show_default=True,
    help="Split(s) to score, repeatable; e.g. --split test --split validation for "
    "`moee report --select-weight-on validation` (extract with --splits test,validation).",
)
@click.option(
    "--zscore-fit",
    type=click.Choice(ZSCORE_FITS),
    default=default("zscore_fit"),
    show_default=True,
    help="Fit z-score statistics on the texts each split's evaluation encodes (split) or on "
    "every cached text of the task (task, the old behaviour).",
)
@cache_dir_option
@data_dir_option
@click.option(
    "--output",
    type=Folder(path_type=Path),
    default=default("output"),
    show_default=True,
    help="Where scores.csv and mteb's JSON results go.",
)
@click.option(
    "--workers",
    default=default("workers"),
    show_default=True,
    type=click.IntRange(min=1),
    help="(task, prompt) units scored at once, in processes (or Ray tasks with --engine ray).",
)
@click.option(
    "--chunk-rows",
    default=default("chunk_rows"),
    show_default=True,
    type=click.IntRange(min=1),
    help="Rows of features read and embedded at once; larger entries (a retrieval corpus) "
    "are read from disk in chunks of this many, so peak memory follows it.",
)
@engine_option(local_help="processes on this machine")
@ray_address_option
def score(
    *,
    model: str,
    prompts: tuple[str, ...],
    query_prompt: str | None,
    document_prompt: str | None,
    tasks: str | None,
    task_types: str | None,
    benchmark: str | None,
    skip_unsupported: bool,
    methods: tuple[Method, ...],
    weights: tuple[float | WeightRule, ...],
    rw: tuple[RwMode, ...],
    pooling: tuple[Pooling, ...],
    layers: tuple[str, ...],
    hs_layers: tuple[str, ...],
    zscore: tuple[ZscoreMode, ...],
    splits: tuple[str, ...],
    zscore_fit: ZscoreFit,
    cache_dir: str | None,
    data_dir: Path | None,
    output: Path,
    workers: int,
    chunk_rows: int,
    engine: Engine,
    ray_address: str | None,
) -> None:
    """Score cached features on MTEB (CPU only, no model): HS, RW, MoEE-concat, MoEE-sum."""
    from moee_pipeline.score.run import UnscoredTasksError, run_score

    fixed, auto = split_weights(weights)
    types = split_csv(task_types)
    try:
        listed, skipped = chosen_tasks(
            tasks=tasks,
            task_types=task_types,
            benchmark=benchmark,
            skip_unsupported=skip_unsupported,
        )
        # click's choices hold the values to the vocabulary's types; the config checks them too
        config = ScoreConfig(
            model=resolve_model(model),
            prompts=prompts,
            query_prompt=query_prompt,
            document_prompt=document_prompt,
            tasks=tuple(listed) if listed else None,
            task_types=tuple(types) if types else None,
            skipped=tuple(skipped.items()),
            methods=methods,
            weights=fixed,
            auto_weight=auto,
            rw=rw,
            pooling=pooling,
            layers=layers,
            hs_layers=hs_layers,
            zscore=zscore,
            splits=splits,
            zscore_fit=zscore_fit,
            cache_dir=cache_root(cache_dir),
            data_dir=data_dir,
            output=output,
            workers=workers,
            engine=engine,
            ray_address=ray_address,
            chunk_rows=chunk_rows,
        )
        rows = run_score(config)
    except UnscoredTasksError as error:  # the other tasks' rows are written: show them first
        _echo_scores(error.rows, output)
        for line in error.lines:
            click.echo(f"Error: {fit_line(line)}", err=True)
        raise SystemExit(1) from error
    except USER_ERRORS as error:
        raise one_line(error) from error
    _echo_scores(rows, output)


def _echo_scores(rows: Sequence[ScoreRow], output: Path) -> None:
    """The terminal table and where the rows went."""
    from moee_pipeline.score.summary import format_table

    if rows:
        click.echo(format_table(rows))
    click.echo(f"\n{len(rows)} scores -> {output / SCORES_FILE}")
