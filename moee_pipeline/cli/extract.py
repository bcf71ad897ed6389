"""`moee extract` and `moee models`: the GPU stage and the models it knows by name."""

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
    parse_shard,
    prompts_option,
    resolve_model,
    split_csv,
    task_options,
)
from moee_pipeline.models.names import DTYPE_NAMES, QUANTIZATIONS, Quantization


@click.command()
@model_option
@click.option("--revision", default=None, help="Model revision (branch, tag or commit).")
@task_options(default_help="Default: the paper's 19 tasks.")
@prompts_option
@click.option(
    "--quantization",
    type=click.Choice(QUANTIZATIONS),
    default=None,
    help="Default: nf4 on CUDA, none on CPU.",
)
@click.option(
    "--dtype",
    type=click.Choice(DTYPE_NAMES),
    default=None,
    help="Default: bfloat16 on CUDA, float32 on CPU.",
)
@click.option("--device", default="auto", show_default=True, help="auto, cpu, cuda or cuda:N.")
@click.option("--batch-size", default=64, show_default=True, type=click.IntRange(min=1))
@click.option(
    "--max-batch-tokens",
    default=16384,
    show_default=True,
    type=click.IntRange(min=1),
    help="Token budget of a padded batch.",
)
@click.option(
    "--max-length",
    default=512,
    show_default=True,
    type=click.IntRange(min=8),
    help="Longer prompted texts are cut inside the template.",
)
@click.option("--rows-per-shard", default=4096, show_default=True, type=click.IntRange(min=1))
@data_dir_option
@cache_dir_option
@click.option(
    "--shard",
    default="0/1",
    show_default=True,
    help="I/N: extract only this process's share of the texts (by text id).",
)
@click.option(
    "--splits",
    default=None,
    help="Comma-separated splits to cover (default: the task's own, test); e.g. test,validation "
    "so that `moee report --select-weight-on validation` can pick weights without test labels.",
)
@click.option("--trust-remote-code", is_flag=True, help="Allow the model's own Hub code.")
@click.option("--overwrite", is_flag=True, help="Re-extract tasks that are already complete.")
def extract(
    *,
    model: str,
    revision: str | None,
    tasks: str | None,
    task_types: str | None,
    prompts: tuple[str, ...],
    quantization: Quantization | None,
    dtype: str | None,
    device: str,
    batch_size: int,
    max_batch_tokens: int,
    max_length: int,
    rows_per_shard: int,
    data_dir: Path | None,
    cache_dir: str | None,
    shard: str,
    splits: str | None,
    trust_remote_code: bool,
    overwrite: bool,
) -> None:
    """Run the model once per task and prompt; cache router logits and hidden states."""
    from moee_pipeline.extract import pipeline as extract_lib
    from moee_pipeline.models.loading import ModelSpec
    from moee_pipeline.prompts import resolve_prompt
    from moee_pipeline.tasks import select_tasks

    try:
        resolved = [resolve_prompt(p) for p in prompts]
        names = select_tasks(tasks=split_csv(tasks), task_types=split_csv(task_types))
        spec = ModelSpec(
            model=resolve_model(model),
            revision=revision,
            quantization=quantization,
            dtype=dtype,
            device=device,
            trust_remote_code=trust_remote_code,
        )
        options = extract_lib.ExtractOptions(
            cache_dir=cache_root(cache_dir),
            batch_size=batch_size,
            max_batch_tokens=max_batch_tokens,
            max_length=max_length,
            rows_per_shard=rows_per_shard,
            shard=parse_shard(shard),
            overwrite=overwrite,
        )
        summaries = extract_lib.run_extract(
            spec,
            tasks=names,
            prompts=resolved,
            options=options,
            data_dir=data_dir,
            splits=split_csv(splits),
        )
        for s in summaries:
            what = (
                "already complete" if s.skipped else f"{s.new_rows} new rows in {s.seconds:.1f} s"
            )
            click.echo(f"{s.task} [{s.prompt_id}]: {s.rows} rows, {what} -> {s.path}")
    except click.ClickException:
        raise
    except USER_ERRORS as error:
        raise one_line(error) from error


@click.command()
def models() -> None:
    """List the paper's models: aliases, layer and expert counts, expected weight memory."""
    from moee_pipeline.models.catalog import PAPER_MODELS, describe, format_models

    click.echo(format_models([describe(m) for m in PAPER_MODELS.values()]))
