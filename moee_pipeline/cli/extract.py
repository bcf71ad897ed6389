"""`moee extract` and `moee models`: the GPU stage and the models it knows by name."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING

import click

from moee_pipeline.cache.layout import cache_root
from moee_pipeline.cli.options import (
    USER_ERRORS,
    cache_dir_option,
    chosen_tasks,
    data_dir_option,
    engine_option,
    model_option,
    names_given,
    one_line,
    parse_shard,
    prompts_option,
    ray_address_option,
    resolve_model,
    side_prompt_options,
    split_csv,
    task_options,
)
from moee_pipeline.extract.engine import RayOptions
from moee_pipeline.extract.settings import DEFAULT_STORE_DTYPE, option_defaults
from moee_pipeline.models.names import DTYPE_NAMES, QUANTIZATIONS, Quantization
from moee_pipeline.vocabulary import HS_STORES, STORE_DTYPES, Engine, HsStore, StoreDtype

if TYPE_CHECKING:
    from moee_pipeline.prompts import Prompt

#: Each option's default, stated once in the library (ExtractOptions, RayOptions).
DEFAULTS = option_defaults()
RAY_DEFAULTS = RayOptions()


@click.command()
@model_option
@click.option("--revision", default=None, help="Model revision (branch, tag or commit).")
@task_options(default_help="Default: the paper's 19 tasks.")
@prompts_option
@side_prompt_options
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
@click.option(
    "--batch-size", default=DEFAULTS["batch_size"], show_default=True, type=click.IntRange(min=1)
)
@click.option(
    "--max-batch-tokens",
    default=DEFAULTS["max_batch_tokens"],
    show_default=True,
    type=click.IntRange(min=1),
    help="Token budget of a padded batch.",
)
@click.option(
    "--max-length",
    default=DEFAULTS["max_length"],
    show_default=True,
    type=click.IntRange(min=8),
    help="Longer prompted texts are cut inside the template.",
)
@click.option(
    "--rows-per-shard",
    default=DEFAULTS["rows_per_shard"],
    show_default=True,
    type=click.IntRange(min=1),
)
@click.option(
    "--store-dtype",
    type=click.Choice(STORE_DTYPES),
    default=None,
    help=f"Type the features are written in, read back as float32 (default: "
    f"{DEFAULT_STORE_DTYPE} for a new entry, an entry's own when resumed or extended); "
    "bfloat16 is stored as float32 values rounded to bfloat16.",
)
@data_dir_option
@cache_dir_option
@click.option(
    "--shard",
    default="{}/{}".format(*DEFAULTS["shard"]),
    show_default=True,
    help="I/N: extract only this process's share of the texts (by text id).",
)
@click.option(
    "--splits",
    default=None,
    callback=names_given,
    help="Comma-separated splits to cover (default: the task's own, test); e.g. test,validation "
    "so that `moee report --select-weight-on validation` can pick weights without test labels.",
)
@click.option("--trust-remote-code", is_flag=True, help="Allow the model's own Hub code.")
@click.option("--overwrite", is_flag=True, help="Re-extract tasks that are already complete.")
@click.option(
    "--hs-layers",
    type=click.Choice(HS_STORES),
    default=DEFAULTS["hs_layers"],
    show_default=True,
    help="Hidden states to store: the last layer's, or also every decoder layer's "
    "(hs_layers_last, hs_layers_mean) for `moee score --hs-layers`.",
)
@click.option(
    "--extend",
    is_flag=True,
    help="With --hs-layers all: add every layer's hidden states to entries extracted with "
    "last (the model runs again; every stored value is kept).",
)
@engine_option(local_help="this process")
@click.option(
    "--workers",
    default=RAY_DEFAULTS.workers,
    show_default=True,
    type=click.IntRange(min=1),
    help="Ray actors, each loading the model once (--engine ray).",
)
@click.option(
    "--gpus-per-worker",
    type=click.FloatRange(min=0),
    default=None,
    help="GPUs per Ray actor (default 1 on a cluster with GPUs, 0 without).",
)
@ray_address_option
@click.option(
    "--device-map",
    type=click.Choice(["auto"]),
    default=None,
    help="auto: spread one model over the visible GPUs (accelerate); nf4 or none only.",
)
@click.option(
    "--max-memory",
    default=None,
    help="With --device-map auto: per-device limits, e.g. gpu=20GiB,cpu=64GiB or 0=20GiB,1=40GiB.",
)
def extract(
    *,
    model: str,
    revision: str | None,
    tasks: str | None,
    task_types: str | None,
    benchmark: str | None,
    skip_unsupported: bool,
    prompts: tuple[str, ...],
    query_prompt: str | None,
    document_prompt: str | None,
    quantization: Quantization | None,
    dtype: str | None,
    device: str,
    batch_size: int,
    max_batch_tokens: int,
    max_length: int,
    rows_per_shard: int,
    store_dtype: StoreDtype | None,
    data_dir: Path | None,
    cache_dir: str | None,
    shard: str,
    splits: str | None,
    trust_remote_code: bool,
    overwrite: bool,
    hs_layers: HsStore,
    extend: bool,
    engine: Engine,
    workers: int,
    gpus_per_worker: float | None,
    ray_address: str | None,
    device_map: str | None,
    max_memory: str | None,
) -> None:
    """Run the model once per task and prompt; cache router logits and hidden states."""
    # none of these imports torch, transformers or mteb: the run starts recording task texts
    # in another process before it imports them
    from moee_pipeline.extract.engine import ExtractRequest, engine_named
    from moee_pipeline.extract.settings import ExtractOptions
    from moee_pipeline.models.placement import Placement, check_placement, parse_max_memory
    from moee_pipeline.models.spec import ModelSpec
    from moee_pipeline.tasks.registry import select_tasks

    try:
        listed, _ = chosen_tasks(
            tasks=tasks,
            task_types=task_types,
            benchmark=benchmark,
            skip_unsupported=skip_unsupported,
        )
        ray = RayOptions(workers=workers, gpus_per_worker=gpus_per_worker, address=ray_address)
        runner = engine_named(engine, ray)  # refused at once: Ray options without Ray, no cluster
        placement = Placement(device_map, parse_max_memory(max_memory))
        spec = ModelSpec(
            model=resolve_model(model),
            revision=revision,
            quantization=quantization,
            dtype=dtype,
            device=device,
            trust_remote_code=trust_remote_code,
            device_map=placement.device_map,
            max_memory=placement.max_memory,
        )
        # refused before any task data or model loads
        check_placement(placement, quantization=spec.quantization, device=device)
        request = ExtractRequest(
            spec,
            tasks=select_tasks(tasks=listed, task_types=split_csv(task_types)),
            prompts=[_prompt(p, cache_root(cache_dir)) for p in prompts],
            options=ExtractOptions(
                cache_dir=cache_root(cache_dir),
                batch_size=batch_size,
                max_batch_tokens=max_batch_tokens,
                max_length=max_length,
                rows_per_shard=rows_per_shard,
                shard=parse_shard(shard),
                overwrite=overwrite,
                hs_layers=hs_layers,
                extend=extend,
                store_dtype=store_dtype,
            ),
            data_dir=data_dir,
            splits=split_csv(splits),
            query_prompt=_side_prompt(query_prompt, cache_dir),
            document_prompt=_side_prompt(document_prompt, cache_dir),
        )
        summaries = runner.run(request)
        reported = False
        for s in summaries:
            if not s.skipped and not reported:  # the model was loaded for this one
                reported = _echo_weight_memory(s.path)
            what = (
                "already complete" if s.skipped else f"{s.new_rows} new rows in {s.seconds:.1f} s"
            )
            if s.copied:
                what += f", {s.copied} copied from other tasks' entries"
            if s.truncated:
                what += f" ({s.truncated} cut to --max-length)"
            _above_bar(f"{s.task} [{s.prompt_id}]: {s.rows} rows, {what} -> {s.path}")
    except click.ClickException:
        raise
    except USER_ERRORS as error:
        raise one_line(error) from error


def _side_prompt(spec: str | None, cache_dir: str | None) -> Prompt | None:
    return None if spec is None else _prompt(spec, cache_root(cache_dir))


def _prompt(spec: str, cache_dir: Path) -> Prompt:
    """A prompt as `resolve_prompt` reads it, or a custom prompt's cache id (`custom-1a2b3c4d`,
    the name extract prints and scoring's hints use) whose template the cache records."""
    from moee_pipeline.cache.completeness import cached_template
    from moee_pipeline.prompts import PromptError, resolve_prompt

    try:
        return resolve_prompt(spec)
    except PromptError:
        template = cached_template(cache_dir, spec) if spec.startswith("custom-") else None
        if template is None or resolve_prompt(template).id != spec:
            raise
        return resolve_prompt(template)


def _above_bar(text: str) -> None:
    """Print a result line while the run's progress bar lives: above it, never inside its line
    (tqdm clears the bar, writes, and draws it again)."""
    from tqdm import tqdm

    tqdm.write(text, file=sys.stdout)


def _echo_weight_memory(entry: Path) -> bool:
    """Print the weight-memory report of the model that extracted `entry`, as its manifest
    records it (whichever engine, process or Ray actor, loaded the model); whether there was one.
    """
    from moee_pipeline.cache import store
    from moee_pipeline.models.memory import format_report

    # `_manifest.json`, or a shard's `_manifest.IofN.json`
    for path in sorted(entry.glob(f"{Path(store.MANIFEST).stem}*.json")):
        manifest = store.read_manifest(entry, path.name) or {}
        if manifest.get("weight_memory"):
            title = f"{manifest.get('model')} [{manifest.get('quantization')}]"
            _above_bar(format_report(manifest["weight_memory"], title=title))
            return True
    return False


@click.command()
def models() -> None:
    """List the paper's models: aliases, layer and expert counts, expected weight memory."""
    from moee_pipeline.models.catalog import PAPER_MODELS, describe, format_models

    click.echo(format_models([describe(m) for m in PAPER_MODELS.values()]))
