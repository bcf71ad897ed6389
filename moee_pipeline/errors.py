"""The base of every error a user can cause and fix; the CLI shows these as one line."""

from __future__ import annotations


class MoeeError(Exception):
    """A problem with the user's input or environment; the message says what to do."""


def first_line(error: BaseException, *, limit: int | None = None) -> str:
    """An error's first line, or its type's name when it has no message: the short cause a
    one-line error quotes from a library's (often multi-line) message.

    `limit` cuts a longer line to that many characters (ending in "..."): a library's message
    is quoted as a cause, never whole (log the whole message where it is caught).
    """
    text = str(error).strip()
    line = text.splitlines()[0] if text else type(error).__name__
    if limit is not None and len(line) > limit:
        line = line[: max(limit - 3, 0)].rstrip() + "..."
    return line
