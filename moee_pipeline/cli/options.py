"""What the commands share: the options every stage takes, their choices taken from the library's
own constants, and the one-line error conversion."""

from __future__ import annotations

import errno
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click

from moee_pipeline.errors import MoeeError, first_line
from moee_pipeline.models.names import DEFAULT_MODEL, MODEL_ALIASES, resolve_model
from moee_pipeline.vocabulary import ENGINES, SUPPORTED_TASK_TYPES

F = TypeVar("F", bound=Callable[..., Any])

logger = logging.getLogger(__name__)

__all__ = [
    "DEFAULT_MODEL",
    "MAX_ERROR_LINE",
    "USER_ERRORS",
    "Folder",
    "cache_dir_option",
    "chosen_tasks",
    "data_dir_option",
    "engine_option",
    "fit_line",
    "model_option",
    "names_given",
    "one_line",
    "parse_shard",
    "prompts_option",
    "ray_address_option",
    "resolve_model",
    "side_prompt_options",
    "split_csv",
    "task_options",
]

#: Errors the user can fix: shown as one line, without a traceback.
USER_ERRORS: tuple[type[Exception], ...] = (MoeeError, OSError)

#: The longest error line the CLI prints ("Error: " included): the path, one short cause and
#: what to do. Messages are written to fit where they are raised; `fit_line` is the backstop.
MAX_ERROR_LINE = 250
_PREFIX = "Error: "  # what click puts before a ClickException's message
_CUT = " ... "

#: What to do about an operating-system error, by errno (the OS message names path and cause).
_OS_ADVICE = {
    errno.ENOSPC: "free disk space, then rerun (finished files are kept)",
    errno.EDQUOT: "free disk space (quota), then rerun (finished files are kept)",
    errno.EACCES: "check its permissions or choose another path",
    errno.EPERM: "check its permissions or choose another path",
    errno.EROFS: "it is on a read-only file system: choose another path",
    errno.ENOENT: "check that the path exists",
    errno.ENOTDIR: "a part of the path is a file: check the path",
    errno.EEXIST: "it is in the way: move it or choose another path",
}


class Folder(click.Path):
    """A folder option: a path naming a file is refused with what to give instead."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(file_okay=False, **kwargs)

    def fail(
        self, message: str, param: click.Parameter | None = None, ctx: click.Context | None = None
    ) -> Any:
        if message.endswith("is a file."):
            message = f"{message.removesuffix('.')}: give a folder"
        return super().fail(message, param, ctx)


#: The cache root option, the same in every command that reads or writes the cache.
cache_dir_option = click.option(
    "--cache-dir",
    default=None,
    type=Folder(),
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


def side_prompt_options(command: Callable[..., Any]) -> Callable[..., Any]:
    """`--query-prompt` and `--document-prompt`: a retrieval task's sides under their own
    templates (sides.py), each defaulting to the one --prompt value."""
    for side in ("document", "query"):
        command = click.option(
            f"--{side}-prompt",
            f"{side}_prompt",
            default=None,
            help=f"The {side}s' own prompt (as --prompt takes it) for Retrieval and Reranking; "
            "default the --prompt value. Other task types use --prompt.",
        )(command)
    return command


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


def names_given(ctx: click.Context, param: click.Parameter, value: str | None) -> str | None:
    """A comma-separated list option's check: given, it names something (`""` or `","` would
    otherwise read as left out, and run the default selection nobody asked for)."""
    if value is not None and not split_csv(value):
        raise click.BadParameter(f"{value!r} names nothing: name at least one, or leave it out")
    return value


def task_options(*, default_help: str) -> Callable[[F], F]:
    """--tasks, --task-types, --benchmark and --skip-unsupported; `default_help` says what a
    command runs when none is given (`chosen_tasks` reads them)."""

    def decorate(command: F) -> F:
        command = click.option(
            "--skip-unsupported",
            is_flag=True,
            help="With --benchmark: leave out its tasks of types we do not score (listed in "
            "the report's notes) instead of refusing the benchmark.",
        )(command)
        command = click.option(
            "--benchmark",
            default=None,
            help="An MTEB benchmark by name, e.g. 'MTEB(eng, v2)': its tasks (of --task-types, "
            "if given) instead of --tasks.",
        )(command)
        command = click.option(
            "--task-types",
            default=None,
            callback=names_given,
            help=f"Comma-separated task types ({', '.join(SUPPORTED_TASK_TYPES)}).",
        )(command)
        return click.option(
            "--tasks",
            default=None,
            callback=names_given,
            help=f"Comma-separated task names. {default_help}",
        )(command)

    return decorate


def chosen_tasks(
    *, tasks: str | None, task_types: str | None, benchmark: str | None, skip_unsupported: bool
) -> tuple[list[str] | None, dict[str, str]]:
    """The task names --tasks or --benchmark give (None: the command's default) and the
    benchmark's tasks left out as of a type we do not score ({task: type}).

    A benchmark with such tasks is refused here, before any model or task data loads, unless
    --skip-unsupported; then one line says what is left out.
    """
    if benchmark is None:
        if skip_unsupported:
            raise click.UsageError("--skip-unsupported needs --benchmark NAME")
        return split_csv(tasks), {}
    if tasks is not None:
        raise click.UsageError("--benchmark and --tasks both name tasks: give one of them")
    from moee_pipeline.tasks.benchmarks import benchmark_tasks

    chosen = benchmark_tasks(
        benchmark, task_types=split_csv(task_types), skip_unsupported=skip_unsupported
    )
    if chosen.skipped:
        kinds = ", ".join(sorted(set(chosen.skipped.values())))
        click.echo(
            f"{benchmark}: leaving out {len(chosen.skipped)} task(s) of type(s) we do not score "
            f"({kinds}); {len(chosen.tasks)} task(s) left",
            err=True,
        )
    return list(chosen.tasks), chosen.skipped


def one_line(error: Exception) -> click.ClickException:
    """One clear line for the user, no traceback: the error's message (an OS error's gains what
    to do about it), within MAX_ERROR_LINE."""
    text = first_line(error)
    if isinstance(error, OSError):
        text = f"{text}; {_OS_ADVICE.get(error.errno or 0, 'check the path and the disk')}"
    return click.ClickException(fit_line(text))


def fit_line(text: str, *, limit: int = MAX_ERROR_LINE - len(_PREFIX)) -> str:
    """`text` if it fits in `limit` characters, else its start and its end (what to do: the
    part after its last ": " or "; ") with the middle cut out; the whole text goes to the log.

    The last resort for a message that its source did not keep short (a very long path).
    """
    if len(text) <= limit:
        return text
    logger.info("the whole error: %s", text)
    ends = [text.rfind(sep) for sep in (": ", "; ")]
    advice = text[max(ends) + 2 :] if max(ends) > 0 else ""
    if not advice or len(advice) > limit // 2:
        advice = text[-(limit // 3) :]
    head = text[: limit - len(_CUT) - len(advice)]
    return f"{head}{_CUT}{advice}"


def split_csv(value: str | None) -> list[str] | None:
    """`a, b,c` -> ["a", "b", "c"]; empty or None -> None (options that must name something
    check that first: `names_given`)."""
    return [v.strip() for v in value.split(",") if v.strip()] if value else None


def parse_shard(value: str) -> tuple[int, int]:
    """`I/N` -> (I, N), with 0 <= I < N."""
    try:
        index, count = (int(x) for x in value.split("/"))
    except ValueError:
        raise click.BadParameter(f"{value!r}: use I/N, e.g. 0/2", param_hint="'--shard'") from None
    if count < 1 or not 0 <= index < count:
        raise click.BadParameter(f"{value!r}: need 0 <= I < N", param_hint="'--shard'")
    return index, count
