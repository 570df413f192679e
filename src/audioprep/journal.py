"""The run journal: one line per finished input item, appended as it finishes.

It is what makes resuming exact. Each line is written with a single ``write`` call; a line
torn by ``kill -9`` is cut off when the journal is opened again. The last line for an id wins.
"""

from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path
from typing import Any

from audioprep.layout import JOURNAL
from audioprep.manifest import dumps
from audioprep.stage import ItemResult

__all__ = ["JOURNAL", "Journal"]


class Journal:
    """Append-only record of item results, indexed by input id."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._index: dict[str, tuple[int, int, str]] = {}  # id -> (offset, length, status)
        self._fd: int | None = None
        self._size = 0

    def open(self) -> None:
        """Load the journal, cutting off a torn last line, and open it for appending."""
        good_end = 0
        if self.path.exists():
            with open(self.path, "rb") as fh:
                offset = 0
                for raw in fh:
                    if not raw.endswith(b"\n"):
                        break
                    try:
                        entry = json.loads(raw)
                    except ValueError:
                        break
                    self._index[entry["id"]] = (offset, len(raw), entry["status"])
                    offset += len(raw)
                    good_end = offset
            if good_end != self.path.stat().st_size:
                os.truncate(self.path, good_end)
        self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        self._size = good_end

    def open_fresh(self) -> None:
        """Empty the journal and open it for appending (a pass that is redone whole)."""
        self.close()
        self._index.clear()
        self.path.write_bytes(b"")
        self.open()

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

    def append(self, result: ItemResult) -> None:
        """Append one result as a single line, in one write."""
        assert self._fd is not None, "journal is not open"
        data = (dumps(dataclasses.asdict(result)) + "\n").encode("utf-8")
        view = memoryview(data)
        while view:
            written = os.write(self._fd, view)
            view = view[written:]
        self._index[result.id] = (self._size, len(data), result.status)
        self._size += len(data)

    def read(self, item_id: str) -> dict[str, Any] | None:
        """The latest entry for ``item_id`` as a dict, or None."""
        entry = self._index.get(item_id)
        if entry is None:
            return None
        offset, length, _ = entry
        with open(self.path, "rb") as fh:
            fh.seek(offset)
            return json.loads(fh.read(length))
