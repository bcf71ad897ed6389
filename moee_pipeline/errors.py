"""The base of every error a user can cause and fix; the CLI shows these as one line."""

from __future__ import annotations


class MoeeError(Exception):
    """A problem with the user's input or environment; the message says what to do."""


def first_line(error: BaseException) -> str:
    """An error's first line, or its type's name when it has no message: the short cause a
    one-line error quotes from a library's (often multi-line) message."""
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__
