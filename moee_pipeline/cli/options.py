"""Helpers shared by the commands: option parsing and one-line errors."""

from __future__ import annotations

import click

from moee_pipeline.errors import MoeeError

#: The model both stages use when --model is not given.
DEFAULT_MODEL = "allenai/OLMoE-1B-7B-0924"

#: The cache root option, the same in every command that reads or writes the cache.
cache_dir_option = click.option(
    "--cache-dir", default=None, help="Cache root (default ./cache or $MOEE_CACHE_DIR)."
)

#: Errors the user can fix: shown as one line, without a traceback.
USER_ERRORS: tuple[type[Exception], ...] = (MoeeError, OSError)


def one_line(error: Exception) -> click.ClickException:
    """One clear line for the user, no traceback."""
    return click.ClickException(str(error).splitlines()[0] if str(error) else repr(error))


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
