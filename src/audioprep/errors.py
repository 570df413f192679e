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


class NonFiniteAudio(ItemError):
    """The item's audio holds NaN or infinite samples: raised by the shared block readers
    (``engines.tone.model.mono_blocks``, ``engines.fingerprint.landmarks``), so every stage
    says so instead of computing NaN results; a stage may turn it into a rejection.

    >>> str(NonFiniteAudio())
    'the audio holds NaN or infinite samples'
    """

    REASON = "the audio holds NaN or infinite samples"

    def __init__(self, reason: str = REASON) -> None:
        super().__init__(reason)


def from_os_error(exc: OSError, where: object) -> AudioprepError:
    """One sentence (exit 3) for a file-system failure outside any one item: a disk that is
    full, a folder that is read-only or missing.

    >>> import errno
    >>> str(from_os_error(OSError(errno.ENOSPC, "No space left on device", "/x/y"), "/x"))
    'cannot write to /x: No space left on device (/x/y); free some space or choose another folder.'
    """
    import errno

    hint = {
        errno.ENOSPC: "free some space or choose another folder",
        errno.EDQUOT: "free some space or choose another folder",
        errno.EFBIG: "free some space or choose another folder",
        errno.EROFS: "the file system is read-only: choose another folder",
        errno.EACCES: "you may not write there: choose another folder",
        errno.EPERM: "you may not write there: choose another folder",
    }.get(exc.errno or 0, "check the folder and try again")
    what = exc.strerror or str(exc)
    file = f" ({exc.filename})" if exc.filename and str(exc.filename) != str(where) else ""
    return AudioprepError(f"cannot write to {where}: {what}{file}; {hint}.")
