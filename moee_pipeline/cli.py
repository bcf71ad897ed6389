"""Command-line interface: parses options and calls library functions."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import click

from moee_pipeline.errors import MoeeError

_ERRORS: tuple[type[Exception], ...] = (MoeeError, OSError)


def _fail(error: Exception) -> click.ClickException:
    """One clear line for the user, no traceback."""
    return click.ClickException(str(error).splitlines()[0] if str(error) else repr(error))


def _csv(value: str | None) -> list[str] | None:
    return [v.strip() for v in value.split(",") if v.strip()] if value else None


def _shard(value: str) -> tuple[int, int]:
    try:
        index, count = (int(x) for x in value.split("/"))
    except ValueError:
        raise click.BadParameter(f"{value!r}: use I/N, e.g. 0/2") from None
    if count < 1 or not 0 <= index < count:
        raise click.BadParameter(f"{value!r}: need 0 <= I < N")
    return index, count


def _cache_dir(value: str | None) -> Path:
    return Path(value or os.environ.get("MOEE_CACHE_DIR") or "cache")


@click.group()
@click.option("-v", "--verbose", count=True, help="More logging (-v info, -vv debug).")
def main(verbose: int) -> None:
    """MoE router weights as embeddings: extract once on a GPU, score on MTEB on a CPU."""
    level = logging.WARNING - 10 * min(verbose, 2)
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s")
    # bitsandbytes warns on import that an optional CPU kernel package is absent
    logging.getLogger("bitsandbytes.backends.cpu.ops").setLevel(max(level, logging.ERROR))


@main.command()
@click.option(
    "--model",
    default="allenai/OLMoE-1B-7B-0924",
    show_default=True,
    help="Hugging Face id, local directory, or alias: olmoe, qwen1.5-moe, deepseek-moe.",
)
@click.option("--revision", default=None, help="Model revision (branch, tag or commit).")
@click.option("--tasks", default=None, help="Comma-separated MTEB task names.")
@click.option(
    "--task-types",
    default=None,
    help="Comma-separated task types (STS, Classification, ...). Default: the paper's 19 tasks.",
)
@click.option(
    "--prompt",
    "prompts",
    multiple=True,
    default=("none",),
    show_default=True,
    help="none, prompteol, a one-word prompt name, or a template with {text}; repeatable.",
)
@click.option(
    "--quantization",
    type=click.Choice(["nf4", "int8", "none"]),
    default=None,
    help="Default: nf4 on CUDA, none on CPU.",
)
@click.option(
    "--dtype",
    type=click.Choice(["bfloat16", "float16", "float32"]),
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
@click.option(
    "--data-dir",
    type=click.Path(path_type=Path),
    default=None,
    help="Read task data from <DIR>/<Task>/<split>.parquet instead of the Hub.",
)
@click.option("--cache-dir", default=None, help="Cache root (default ./cache or $MOEE_CACHE_DIR).")
@click.option(
    "--shard",
    default="0/1",
    show_default=True,
    help="I/N: extract only this process's share of the texts (by text id).",
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
    quantization: str | None,
    dtype: str | None,
    device: str,
    batch_size: int,
    max_batch_tokens: int,
    max_length: int,
    rows_per_shard: int,
    data_dir: Path | None,
    cache_dir: str | None,
    shard: str,
    trust_remote_code: bool,
    overwrite: bool,
) -> None:
    """Run the model once per task and prompt; cache router logits and hidden states."""
    from moee_pipeline import extract as extract_lib
    from moee_pipeline.catalog import resolve_model
    from moee_pipeline.model import ModelSpec
    from moee_pipeline.prompts import resolve_prompt
    from moee_pipeline.tasks import select_tasks

    try:
        resolved = [resolve_prompt(p) for p in prompts]
        names = select_tasks(tasks=_csv(tasks), task_types=_csv(task_types))
        spec = ModelSpec(
            model=resolve_model(model),
            revision=revision,
            quantization=quantization,  # type: ignore[arg-type]
            dtype=dtype,
            device=device,
            trust_remote_code=trust_remote_code,
        )
        options = extract_lib.ExtractOptions(
            cache_dir=_cache_dir(cache_dir),
            batch_size=batch_size,
            max_batch_tokens=max_batch_tokens,
            max_length=max_length,
            rows_per_shard=rows_per_shard,
            shard=_shard(shard),
            overwrite=overwrite,
        )
        summaries = extract_lib.run_extract(
            spec, tasks=names, prompts=resolved, options=options, data_dir=data_dir
        )
        for s in summaries:
            what = (
                "already complete" if s.skipped else f"{s.new_rows} new rows in {s.seconds:.1f} s"
            )
            click.echo(f"{s.task} [{s.prompt_id}]: {s.rows} rows, {what} -> {s.path}")
    except click.ClickException:
        raise
    except _ERRORS as error:
        raise _fail(error) from error


@main.command()
@click.option(
    "--model",
    default="allenai/OLMoE-1B-7B-0924",
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
@click.option("--cache-dir", default=None, help="Cache root (default ./cache or $MOEE_CACHE_DIR).")
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
    cache_dir: str | None,
    data_dir: Path | None,
    output: Path,
) -> None:
    """Score cached features on MTEB (CPU only, no model): HS, RW, MoEE-concat, MoEE-sum."""
    from moee_pipeline import score as score_lib
    from moee_pipeline.catalog import resolve_model

    listed = _csv(tasks)
    types = _csv(task_types)
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
        cache_dir=_cache_dir(cache_dir),
        data_dir=data_dir,
        output=output,
    )
    try:
        rows = score_lib.run_score(config)
    except _ERRORS as error:
        raise _fail(error) from error
    click.echo(score_lib.format_table(rows))
    click.echo(f"\n{len(rows)} scores -> {output / 'scores.csv'}")


@main.command()
@click.option(
    "--results",
    type=click.Path(path_type=Path),
    default=Path("results"),
    show_default=True,
    help="Folder holding scores.csv (or the CSV file itself).",
)
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["markdown", "csv", "latex"]),
    default="markdown",
    show_default=True,
)
@click.option(
    "--out", type=click.Path(path_type=Path), default=None, help="Write here, not stdout."
)
@click.option("--split", default="test", show_default=True, help="The split the tables report.")
@click.option("--weight", type=float, default=None, help="Keep only this MoEE-sum weight.")
@click.option(
    "--select-weight-on",
    default=None,
    help="Pick MoEE-sum's weight per task on this split (e.g. validation); 'test' = oracle.",
)
@click.option("--compare-paper", is_flag=True, help="Published numbers next to ours, with diffs.")
@click.option(
    "--plots", type=click.Path(path_type=Path), default=None, help="Write PNG figures here."
)
def report(
    *,
    results: Path,
    fmt: str,
    out: Path | None,
    split: str,
    weight: float | None,
    select_weight_on: str | None,
    compare_paper: bool,
    plots: Path | None,
) -> None:
    """The paper's tables (per task type and per task) from scores.csv, optionally vs the paper."""
    from moee_pipeline import report as report_lib
    from moee_pipeline.render import build_report

    if weight is not None and select_weight_on is not None:
        raise click.ClickException("use either --weight or --select-weight-on, not both")
    options = report_lib.ReportOptions(split=split, weight=weight, select_on=select_weight_on)
    try:
        scores = report_lib.load_scores(results)
        text = build_report(
            scores=scores,
            options=options,
            fmt=fmt,  # type: ignore[arg-type]
            compare_paper=compare_paper,
        )
        if plots is not None:
            from moee_pipeline.plots import make_plots

            written = make_plots(scores=scores, options=options, out_dir=plots)
        if out is not None:
            out.parent.mkdir(parents=True, exist_ok=True)
            out.write_text(text, encoding="utf-8")
    except _ERRORS as error:
        raise _fail(error) from error
    click.echo(f"report -> {out}" if out is not None else text.rstrip("\n"))
    if plots is not None:
        click.echo(f"{len(written)} figure(s) -> {plots}")


@main.command(name="ls")
@click.option("--cache-dir", default=None, help="Cache root (default ./cache or $MOEE_CACHE_DIR).")
@click.option("--model", default=None, help="Only this model (Hub id, folder or cache slug).")
@click.option("--json", "as_json", is_flag=True, help="JSON for scripts.")
def ls_command(*, cache_dir: str | None, model: str | None, as_json: bool) -> None:
    """The feature cache: rows, widths, size, progress and age per (model, prompt, task)."""
    from moee_pipeline.inventory import format_inventory, inventory, inventory_json

    root = _cache_dir(cache_dir)
    try:
        rows = inventory(cache_dir=root, model=model)
    except _ERRORS as error:
        raise _fail(error) from error
    if as_json:
        click.echo(inventory_json(rows))
    elif not rows:
        click.echo(f"no cached features under {root}")
    else:
        click.echo(format_inventory(rows))


@main.command()
def models() -> None:
    """List the paper's models: aliases, layer and expert counts, expected weight memory."""
    from moee_pipeline.catalog import PAPER_MODELS, describe, format_models

    click.echo(format_models([describe(m) for m in PAPER_MODELS.values()]))
