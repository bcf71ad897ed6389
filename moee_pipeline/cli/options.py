"""What the commands share: the options every stage takes, their choices taken from the library's
own constants, and the one-line error conversion."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click

from moee_pipeline.errors import MoeeError, first_line
from moee_pipeline.models.names import DEFAULT_MODEL, MODEL_ALIASES, resolve_model
from moee_pipeline.vocabulary import ENGINES, TASK_TYPES

F = TypeVar("F", bound=Callable[..., Any])

__all__ = [
    "DEFAULT_MODEL",
    "USER_ERRORS",
    "cache_dir_option",
    "data_dir_option",
    "engine_option",
    "model_option",
    "one_line",
    "parse_shard",
    "prompts_option",
    "ray_address_option",
    "resolve_model",
    "split_csv",
    "task_options",
]

#: Errors the user can fix: shown as one line, without a traceback.
USER_ERRORS: tuple[type[Exception], ...] = (MoeeError, OSError)

#: The cache root option, the same in every command that reads or writes the cache.
cache_dir_option = click.option(
    "--cache-dir",
    default=None,
    type=click.Path(file_okay=False),
    help="Cache root (default ./cache or $MOEE_CACHE_DIR).",
)

#: The model, as extraction keys the cache and scoring finds it again.
model_option = click.option(
    "--model",
    default=DEFAULT_MODEL,
    show_default=True,
    help=f"Hugging Face id, local directory, or alias: {', '.join(MODEL_ALIASES)}.",
)

#: Prompts: extraction runs each, scoring reads each one's cache entry.
prompts_option = click.option(
    "--prompt",
    "prompts",
    multiple=True,
    default=("none",),
    show_default=True,
    help="none, prompteol, a one-word prompt name, a template with {text}, or a cache id "
    "(custom-xxxxxxxx); repeatable.",
)

data_dir_option = click.option(
    "--data-dir",
    type=click.Path(path_type=Path),
    default=None,
    help="Task data from <DIR>/<Task>/<split>.parquet (MTEB's columns) when the cache holds "
    "no task snapshot.",
)


def engine_option(*, local_help: str) -> Callable[[F], F]:
    """--engine; `local_help` says what the local engine is for a command."""
    return click.option(
        "--engine",
        type=click.Choice(ENGINES),
        default="local",
        show_default=True,
        help=f"local: {local_help}; ray: on a Ray cluster (pip install -e .[ray]).",
    )


ray_address_option = click.option(
    "--ray-address",
    default=None,
    help="Ray cluster to join: auto, host:6379 or ray://host:10001 (default: start a local "
    "instance).",
)


def task_options(*, default_help: str) -> Callable[[F], F]:
    """--tasks and --task-types; `default_help` says what a command runs when neither is given."""

    def decorate(command: F) -> F:
        command = click.option(
            "--task-types",
            default=None,
            help=f"Comma-separated task types ({', '.join(TASK_TYPES)}).",
        )(command)
        return click.option(
            "--tasks", default=None, help=f"Comma-separated task names. {default_help}"
        )(command)

    return decorate


def one_line(error: Exception) -> click.ClickException:
    """One clear line for the user, no traceback."""
    return click.ClickException(first_line(error))


def split_csv(value: str | None) -> list[str] | None:
    """`a, b,c` -> ["a", "b", "c"]; empty or None -> None."""
    return [v.strip() for v in value.split(",") if v.strip()] if value else None


def parse_shard(value: str) -> tuple[int, int]:
    """`I/N` -> (I, N), with 0 <= I < N."""
    try:
        index, count = (int(x) for x in value.split("/"))
    except ValueError:
        raise click.BadParameter(f"{value!r}: use I/N, e.g. 0/2") from None
    if count < 1 or not 0 <= index < count:
        raise click.BadParameter(f"{value!r}: need 0 <= I < N")
    return index, count
