"""The run journal: one line per finished input item, appended as it finishes.

It is what makes resuming exact. Each line is written with a single ``write`` call; a line
torn by ``kill -9`` is cut off when the journal is opened again. The last line for an id wins.

A journal is tied to the input it was made from: its first line is a header holding a stamp
of that input (its path and a hash of its manifest, see :func:`input_stamp`). Opened with
another stamp, for instance after the stage before was re-run with other settings, the
journal is emptied, so a resumed stage never mixes items of an old input with a new one.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
from pathlib import Path
from typing import Any

from audioprep.core.stage import ItemResult
from audioprep.manifests.layout import JOURNAL, MANIFEST
from audioprep.manifests.records import dumps

__all__ = ["JOURNAL", "Journal", "input_stamp"]
_HEADER_KEY = "journal_input"


def input_stamp(in_dir: Path | None, manifest_name: str = MANIFEST) -> dict[str, Any]:
    """The identity and content stamp of a stage's input: its resolved path and the SHA-256
    of its manifest (a source stage, which has no input directory, gets ``{"input": None}``)."""
    if in_dir is None:
        return {"input": None}
    digest = hashlib.sha256()
    with open(Path(in_dir) / manifest_name, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return {"input": str(Path(in_dir).resolve()), "manifest_sha256": digest.hexdigest()}


def _unjournalable(result: ItemResult, exc: Exception) -> ItemResult:
    why = (
        "NaN or Infinity"
        if isinstance(exc, ValueError) and "JSON compliant" in str(exc)
        else f"{type(exc).__name__}: {str(exc)[:200]}"
    )
    return ItemResult(
        id=result.id,
        status="error",
        error={
            "reason": f"the stage produced a value that cannot be stored as JSON ({why})",
            "type": "UnserializableOutput",
            "record": None,
        },
    )


class Journal:
    """Append-only record of item results, indexed by input id."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._index: dict[str, tuple[int, int, str]] = {}  # id -> (offset, length, status)
        self._fd: int | None = None
        self._size = 0
        self.stamp: dict[str, Any] | None = None

    def open(self, stamp: dict[str, Any] | None = None) -> None:
        """Load the journal, cutting off a torn last line, and open it for appending.

        With ``stamp``, a journal made from another input (another stamp, or none) is emptied
        first, and a new one starts with a header line holding ``stamp``.
        """
        good_end = 0
        self._index.clear()
        self.stamp = stamp
        if self.path.exists():
            with open(self.path, "rb") as fh:
                offset = 0
                for n, raw in enumerate(fh):
                    if not raw.endswith(b"\n"):
                        break
                    try:
                        entry = json.loads(raw)
                    except ValueError:
                        break
                    if not isinstance(entry, dict):
                        break
                    if n == 0 and _HEADER_KEY in entry:
                        if stamp is not None and entry[_HEADER_KEY] != stamp:
                            break  # made from another input: start over
                        offset = good_end = len(raw)
                        continue
                    if n == 0 and stamp is not None:
                        break  # a journal without a header: its input is unknown
                    if not isinstance(entry.get("id"), str) or "status" not in entry:
                        break
                    self._index[entry["id"]] = (offset, len(raw), entry["status"])
                    offset += len(raw)
                    good_end = offset
            if good_end != self.path.stat().st_size:
                os.truncate(self.path, good_end)
        self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        self._size = good_end
        if good_end == 0:
            self._index.clear()
            if stamp is not None:
                self._write((json.dumps({_HEADER_KEY: stamp}, sort_keys=True) + "\n").encode())

    def _write(self, data: bytes) -> None:
        assert self._fd is not None, "journal is not open"
        view = memoryview(data)
        while view:
            written = os.write(self._fd, view)
            view = view[written:]
        self._size += len(data)

    def open_fresh(self) -> None:
        """Empty the journal and open it for appending (a pass that is redone whole)."""
        self.close()
        self._index.clear()
        self.path.write_bytes(b"")
        self.open(self.stamp)

    def close(self) -> None:
        if self._fd is not None:
            os.fsync(self._fd)
            os.close(self._fd)
            self._fd = None

    def status(self, item_id: str) -> str | None:
        """The latest status recorded for ``item_id`` ("ok", "rejected", "error"), or None."""
        entry = self._index.get(item_id)
        return entry[2] if entry else None

    def ids(self) -> list[str]:
        return list(self._index)

    def append(self, result: ItemResult) -> ItemResult:
        """Append one result as a single line, in one write; return what was journaled.

        A result that cannot be stored as JSON (NaN, Infinity, a lone surrogate from a
        stage) is journaled as that item's error instead of stopping the run.
        """
        assert self._fd is not None, "journal is not open"
        try:
            data = (dumps(dataclasses.asdict(result)) + "\n").encode("utf-8")
        except (ValueError, TypeError, RecursionError, UnicodeEncodeError) as exc:
            result = _unjournalable(result, exc)
            data = (dumps(dataclasses.asdict(result)) + "\n").encode("utf-8")
        offset = self._size
        self._write(data)
        self._index[result.id] = (offset, len(data), result.status)
        return result

    def read(self, item_id: str) -> dict[str, Any] | None:
        """The latest entry for ``item_id`` as a dict, or None."""
        entry = self._index.get(item_id)
        if entry is None:
            return None
        offset, length, _ = entry
        with open(self.path, "rb") as fh:
            fh.seek(offset)
            return json.loads(fh.read(length))
