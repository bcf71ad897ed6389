"""`moee paper`: the paper's whole analysis for one model in one command (`make paper MODEL=...`).

The steps are the commands a user would type, run in this process one after the other, so the
README can show them and `--dry-run` prints them:

1. extract the tasks under each prompt, with every decoder layer's hidden states and the
   validation texts MoEE-sum's weight rules need (`--splits test,validation`);
2. score the paper's grid: the four methods, last-token and mean pooling, HS of the last layer
   and of all layers, the fixed weights and the label-free one, on test and validation;
3. score HS of each decoder layer alone (the layer figure; the layer count is read from the
   cache the first step wrote);
4. report beside the paper's numbers (Tables 3-5), MoEE-sum at the weight picked per task on
   validation (`--pick-weight auto`: the label-free one), and the weight rules side by side
   (validation, label-free, and the oracle, labelled so); markdown with its PNG figures, and one
   self-contained HTML file.

Everything lands in one results folder. `make demo` runs the same steps on the tiny model and
the toy tasks.
"""

from __future__ import annotations

import shlex
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, get_args

import click

from moee_pipeline.cache import layout, store
from moee_pipeline.cli.options import (
    USER_ERRORS,
    cache_dir_option,
    chosen_tasks,
    data_dir_option,
    model_option,
    one_line,
    resolve_model,
    split_csv,
    task_options,
)
from moee_pipeline.errors import MoeeError
from moee_pipeline.prompts import prompt_id
from moee_pipeline.vocabulary import AUTO, HS, PAPER_TASKS, check_weight, format_weight

#: The prompts of the paper's main tables.
PAPER_PROMPTS = ("none", "prompteol")
#: How the report picks MoEE-sum's weight per task: on validation, or the label-free rule.
PickWeight = Literal["validation", "auto"]
#: MoEE-sum's fixed weights swept (the paper publishes no per-task alpha): a log-spaced grid
#: around 1, where HS and RW count alike; the label-free weight and the one picked on
#: validation are added by the run.
PAPER_WEIGHTS = (0.25, 0.5, 1.0, 2.0, 4.0)


@dataclass(frozen=True)
class PaperRun:
    """What `moee paper` runs: one model, its tasks and prompts, one results folder."""

    model: str
    out: Path
    tasks: tuple[str, ...] = tuple(PAPER_TASKS)
    prompts: tuple[str, ...] = PAPER_PROMPTS
    weights: tuple[float, ...] = PAPER_WEIGHTS
    cache_dir: Path = field(default_factory=layout.cache_root)
    data_dir: Path | None = None
    extract_options: tuple[str, ...] = ()  # passed on to `moee extract` (e.g. --quantization)
    #: How the report's tables pick MoEE-sum's weight (the paper comparison needs one rule):
    #: on the validation split, or the label-free weight (tasks without validation texts).
    pick_weight: PickWeight = "validation"
    #: `--benchmark NAME` (and `--skip-unsupported`) instead of the task names, passed on to
    #: extract and score so the report notes what a benchmark left out.
    benchmark: str | None = None
    skip_unsupported: bool = False

    @property
    def scores(self) -> Path:
        return self.out / "scores"

    def _selection(self) -> list[str]:
        data = [] if self.data_dir is None else ["--data-dir", str(self.data_dir)]
        prompts = [arg for p in self.prompts for arg in ("--prompt", p)]
        tasks = ["--tasks", ",".join(self.tasks)]
        if self.benchmark is not None:
            tasks = ["--benchmark", self.benchmark]
            tasks += ["--skip-unsupported"] if self.skip_unsupported else []
        return [
            "--model", self.model, *tasks, *prompts, "--cache-dir", str(self.cache_dir), *data,
        ]  # fmt: skip

    def extract(self) -> list[str]:
        """Step 1: every layer's hidden states, and the validation texts."""
        return [
            "extract", *self._selection(), "--hs-layers", "all",
            "--splits", "test,validation", *self.extract_options,
        ]  # fmt: skip

    def score(self) -> list[str]:
        """Step 2: the grid of Tables 3-5."""
        weights = [arg for w in self.weights for arg in ("--weight", format_weight(w))]
        return [
            "score", *self._selection(), *weights, "--weight", AUTO,
            "--pooling", "last", "--pooling", "mean", "--hs-layers", "last", "--hs-layers", "all",
            "--split", "test", "--split", "validation", "--output", str(self.scores),
        ]  # fmt: skip

    def layer_scores(self, n_layers: int) -> list[str]:
        """Step 3: HS of each decoder layer alone, both poolings (the layer figure)."""
        layers = [arg for i in range(n_layers) for arg in ("--hs-layers", str(i))]
        return [
            "score", *self._selection(), "--method", HS, *layers,
            "--pooling", "last", "--pooling", "mean", "--output", str(self.scores),
        ]  # fmt: skip

    def reports(self) -> list[list[str]]:
        """Step 4: markdown with its figures, and the same report as one HTML file."""
        rule = ["--select-weight-on", "validation"]
        if self.pick_weight == AUTO:
            rule = ["--weight-rule", AUTO]
        common = ["report", "--results", str(self.scores), "--compare-paper", *rule]
        return [
            [*common, "--out", str(self.out / "report.md"), "--plots", str(self.out / "plots")],
            [*common, "--format", "html", "--out", str(self.out / "report.html")],
        ]

    def n_layers(self) -> int:
        """The model's decoder layers, as step 1 recorded them in the cache."""
        for prompt in self.prompts:
            for task in self.tasks:
                entry = layout.task_dir(
                    self.cache_dir, model=self.model, prompt_id=prompt_id(prompt), task=task
                )
                manifest = store.read_manifest(entry)
                if manifest is not None and "n_layers" in manifest:
                    return int(manifest["n_layers"])
        raise MoeeError(f"no manifest of {self.model} in {self.cache_dir}: run the extract step")


#: Runs one step: the arguments of one `moee` command.
Step = Callable[[list[str]], None]


def run_paper(run: PaperRun, invoke: Step) -> None:
    """Run the steps through `invoke` (the CLI's own commands); the layer count that step 3
    needs is read from the cache step 1 wrote."""
    invoke(run.extract())
    invoke(run.score())
    invoke(run.layer_scores(run.n_layers()))
    for report in run.reports():
        invoke(report)


def _invoke_command(args: list[str]) -> None:
    """One step as `moee ARGS` in this process, shown first as the user would type it."""
    root = click.get_current_context().find_root().command
    click.secho(f"\n$ moee {shlex.join(args)}", bold=True)
    root.main(args=args, prog_name="moee", standalone_mode=False)


@click.command("paper")
@model_option
@task_options(default_help="Default: the paper's 19.")
@click.option(
    "--prompt",
    "prompts",
    multiple=True,
    default=PAPER_PROMPTS,
    show_default=True,
    help="Prompts to extract and score, repeatable.",
)
@click.option(
    "--weight",
    "weights",
    type=float,
    multiple=True,
    default=PAPER_WEIGHTS,
    show_default=True,
    help="MoEE-sum's fixed weights, repeatable (the label-free one and the one picked on "
    "validation are added).",
)
@click.option(
    "--out",
    type=click.Path(path_type=Path),
    default=None,
    help="Results folder (default results/paper-<model slug>).",
)
@cache_dir_option
@data_dir_option
@click.option(
    "--extract-args",
    default="",
    help='More `moee extract` options, e.g. "--quantization none --batch-size 64".',
)
@click.option(
    "--pick-weight",
    type=click.Choice(get_args(PickWeight)),
    default="validation",
    show_default=True,
    help="How the report picks MoEE-sum's weight per task: on the validation split, or the "
    "label-free rule (auto).",
)
@click.option("--dry-run", is_flag=True, help="Print the steps' commands; run nothing.")
def paper(
    model: str,
    tasks: str | None,
    task_types: str | None,
    benchmark: str | None,
    skip_unsupported: bool,
    prompts: tuple[str, ...],
    weights: tuple[float, ...],
    out: Path | None,
    cache_dir: str | None,
    data_dir: Path | None,
    extract_args: str,
    pick_weight: PickWeight,
    dry_run: bool,
) -> None:
    """The paper's analysis for one model: extract, score the grid, report (Tables 3-5)."""
    from moee_pipeline.tasks.registry import select_tasks

    try:
        name = resolve_model(model)
        for weight in weights:
            check_weight(weight)
        listed, _ = chosen_tasks(
            tasks=tasks,
            task_types=task_types,
            benchmark=benchmark,
            skip_unsupported=skip_unsupported,
        )
        run = PaperRun(
            model=name,
            out=out if out is not None else Path("results") / f"paper-{layout.model_slug(name)}",
            tasks=tuple(select_tasks(tasks=listed, task_types=split_csv(task_types))),
            prompts=prompts,
            weights=weights,
            cache_dir=layout.cache_root(cache_dir),
            data_dir=data_dir,
            extract_options=tuple(shlex.split(extract_args)),
            pick_weight=pick_weight,
            benchmark=benchmark,
            skip_unsupported=skip_unsupported,
        )
        if dry_run:
            steps = [run.extract(), run.score(), run.layer_scores(0), *run.reports()]
            for number, args in enumerate(steps, start=1):
                click.echo(f"moee {shlex.join(args)}")
                if number == 3:
                    click.echo("  (with --hs-layers 0 ... --hs-layers N-1: the model's N decoder")
                    click.echo("  layers, read from the cache after the first step)")
            return
        run_paper(run, _invoke_command)
    except USER_ERRORS as error:
        raise one_line(error) from error
    except ValueError as error:  # a weight out of range
        raise click.BadParameter(str(error), param_hint="--weight") from error
    click.secho(f"\nPaper run finished: {run.out}/report.md, report.html, plots/", bold=True)
