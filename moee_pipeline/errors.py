"""The base of every error a user can cause and fix; the CLI shows these as one line."""

from __future__ import annotations


class MoeeError(Exception):
    """A problem with the user's input or environment; the message says what to do."""
