"""Error types: fatal errors for the user, and per-item failures for errors.jsonl."""

from __future__ import annotations


class AudioprepError(Exception):
    """A fatal error whose message is one sentence for the user, printed without a traceback.

    ``exit_code`` is the process status the CLI exits with.
    """

    exit_code = 3


class UsageError(AudioprepError):
    """Invalid options or arguments, detected before any file is touched."""

    exit_code = 2


class ItemError(Exception):
    """One item failed; its message is the reason written to errors.jsonl."""
