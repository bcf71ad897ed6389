"""`moee report` and `moee ls`: tables, figures and the cache inventory.

The report command's defaults are `ReportOptions`' (and the results folder `moee score` writes).
"""

from __future__ import annotations

from dataclasses import fields
from pathlib import Path
from typing import Any

import click

from moee_pipeline.cache import files
from moee_pipeline.cache.layout import cache_root, check_outside_cache
from moee_pipeline.cache.skipped import read_skipped
from moee_pipeline.cli.options import (
    USER_ERRORS,
    Folder,
    cache_dir_option,
    names_given,
    one_line,
    resolve_model,
    split_csv,
)
from moee_pipeline.report import FORMATS, Format
from moee_pipeline.report.options import ReportOptions
from moee_pipeline.score.config import default as score_default
from moee_pipeline.vocabulary import AUTO, SUM, WeightRule

_REPORT_DEFAULTS: dict[str, Any] = {f.name: f.default for f in fields(ReportOptions)}


@click.command()
@click.option(
    "--results",
    type=click.Path(path_type=Path),
    default=score_default("output"),
    show_default=True,
    help="Folder holding scores.csv (or the CSV file itself).",
)
@click.option(
    "--format",
    "fmt",
    type=click.Choice(FORMATS),
    default="markdown",
    show_default=True,
)
@click.option(
    "--out", type=click.Path(path_type=Path), default=None, help="Write here, not stdout."
)
@click.option(
    "--split",
    default=_REPORT_DEFAULTS["split"],
    show_default=True,
    help="The split the tables report.",
)
@click.option(
    "--weight", type=float, default=_REPORT_DEFAULTS["weight"], help=f"Keep only this {SUM} weight."
)
@click.option(
    "--weight-rule",
    type=click.Choice([AUTO]),
    default=_REPORT_DEFAULTS["weight_rule"],
    help=f"Keep {SUM} rows scored with `moee score --weight {AUTO}` (the label-free weight).",
)
@click.option(
    "--select-weight-on",
    default=_REPORT_DEFAULTS["select_on"],
    help=f"Pick {SUM}'s weight per task on this split (e.g. validation); the report's own "
    "split (test) gives the oracle, labelled so.",
)
@click.option("--compare-paper", is_flag=True, help="Published numbers next to ours, with diffs.")
@click.option("--plots", type=Folder(path_type=Path), default=None, help="Write PNG figures here.")
def report(
    *,
    results: Path,
    fmt: Format,
    out: Path | None,
    split: str,
    weight: float | None,
    weight_rule: WeightRule | None,
    select_weight_on: str | None,
    compare_paper: bool,
    plots: Path | None,
) -> None:
    """The paper's tables (per task type and per task) from scores.csv, optionally vs the paper."""
    from moee_pipeline.report import tables as report_lib
    from moee_pipeline.report.render import build_report

    try:
        options = ReportOptions(
            split=split, weight=weight, weight_rule=weight_rule, select_on=select_weight_on
        )
        for option, target in (("--out", out), ("--plots", plots)):
            if target is not None:  # refused before anything is read or written
                check_outside_cache(target, option=option, caches=(cache_root(),))
        scores = report_lib.load_scores(results)
        text = build_report(
            scores=scores,
            options=options,
            fmt=fmt,
            compare_paper=compare_paper,
            skipped=read_skipped(results if results.is_dir() else results.parent),
        )
        if plots is not None:
            from moee_pipeline.report.plots import make_plots

            written = make_plots(scores=scores, options=options, out_dir=plots)
        if out is not None:
            out.parent.mkdir(parents=True, exist_ok=True)
            files.write_text_atomic(out, text)
    except USER_ERRORS as error:
        raise one_line(error) from error
    click.echo(f"report -> {out}" if out is not None else text.rstrip("\n"))
    if plots is not None:
        click.echo(f"{len(written)} figure(s) -> {plots}")


@click.command(name="ls")
@cache_dir_option
@click.option("--model", default=None, help="Only this model (Hub id, folder or cache slug).")
@click.option("--json", "as_json", is_flag=True, help="JSON for scripts.")
def ls_command(*, cache_dir: str | None, model: str | None, as_json: bool) -> None:
    """The feature cache: rows, widths, size, progress and age per (model, prompt, task)."""
    from moee_pipeline.cache.inventory import format_inventory, inventory, inventory_json

    root = cache_root(cache_dir)
    try:
        rows = inventory(cache_dir=root, model=resolve_model(model) if model else None)
    except USER_ERRORS as error:
        raise one_line(error) from error
    if as_json:
        click.echo(inventory_json(rows))
    elif not rows:
        click.echo(f"no cached features under {root}")
    else:
        click.echo(format_inventory(rows))


@click.command(name="verify")
@cache_dir_option
@click.option("--model", default=None, help="Only this model (Hub id, folder, alias or slug).")
@click.option(
    "--prompt", "prompts", multiple=True, help="Only this prompt (name or id); repeatable."
)
@click.option(
    "--tasks", default=None, callback=names_given, help="Only these comma-separated tasks."
)
@click.option("--repair", is_flag=True, help="Move broken files aside so extract recomputes them.")
def verify_command(
    *,
    cache_dir: str | None,
    model: str | None,
    prompts: tuple[str, ...],
    tasks: str | None,
    repair: bool,
) -> None:
    """Check the cache against its manifests: hashes, rows, widths, text ids, snapshots.

    One line per problem; exit status 1 when there is any.
    """
    from moee_pipeline.cache import verify
    from moee_pipeline.prompts import prompt_id

    root = cache_root(cache_dir)
    try:
        found = verify.verify_cache(
            root,
            model=resolve_model(model) if model else None,
            prompts=[prompt_id(p) for p in prompts] or None,
            tasks=split_csv(tasks),
        )
        for problem in found.problems:
            click.echo(problem.line())
        moved = verify.repair(root, found.problems) if repair and found.problems else []
    except USER_ERRORS as error:
        raise one_line(error) from error
    for source, target in moved:
        click.echo(f"moved {source} -> {target}")
    summary = (
        f"{found.entries} entries, {found.parts} parts, {found.snapshots} task snapshots checked"
    )
    if not found.problems:
        click.echo(f"{summary}: no problems")
        return
    advice = "rerun `moee extract` to recompute what was moved" if moved else "see above"
    if not repair:
        advice = "`moee verify --repair` moves broken files aside, then rerun `moee extract`"
    click.echo(f"{summary}: {len(found.problems)} problem(s); {advice}")
    raise SystemExit(1)
