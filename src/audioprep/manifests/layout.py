"""The manifest directory's layout: its file names, the run identity, the lock, clearing.

One module owns what a stage's output directory holds, so the runner, chains and the report
ask here instead of spelling file names themselves::

    OUT_DIR/
      manifest.jsonl    one record per item (written at the end, in input order)
      audio/            the items' audio (and any other file a record names)
      rejected.jsonl    items and parts dropped on purpose, with the reason
      errors.jsonl      items that failed, with the reason
      stage.json        written last: parameters, input, counts, timings, tool versions
      decision.json     corpus stages: the corpus-wide decision
      .run.json         the identity of the run in progress (stage, version, params, input)
      .journal.jsonl    one line per finished item: what makes resuming exact
      .measure.jsonl    corpus stages: the first pass's journal
      .lock             held (flock) while a run writes here
      .tmp/ .partial/   files being written; downloads to resume

>>> old = {"stage": "trim", "params": {"head": 1}}
>>> identity_changes(old, {"stage": "trim", "params": {"head": 2}})
['head: 1 -> 2']
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import shutil
from pathlib import Path
from typing import Any

from audioprep.errors import AudioprepError

MANIFEST = "manifest.jsonl"
STAGE_FILE = "stage.json"
ERRORS = "errors.jsonl"
REJECTED = "rejected.jsonl"
AUDIO_DIR = "audio"
REPORT_FILE = "report.html"
REPORT_JSON = "report.json"
RUN_FILE = ".run.json"
JOURNAL = ".journal.jsonl"
MEASURE_JOURNAL = ".measure.jsonl"
DECISION_FILE = "decision.json"
LOCK_FILE = ".lock"
TMP_DIR = ".tmp"
PARTIAL_DIR = ".partial"
#: Files a run writes, removed by :func:`clear`.
RUN_FILES = (
    STAGE_FILE,
    MANIFEST,
    ERRORS,
    REJECTED,
    JOURNAL,
    RUN_FILE,
    MEASURE_JOURNAL,
    DECISION_FILE,
)
RUN_DIRS = (AUDIO_DIR, TMP_DIR, PARTIAL_DIR)

__all__ = [
    "AUDIO_DIR",
    "DECISION_FILE",
    "ERRORS",
    "JOURNAL",
    "LOCK_FILE",
    "MANIFEST",
    "MEASURE_JOURNAL",
    "PARTIAL_DIR",
    "REJECTED",
    "REPORT_FILE",
    "REPORT_JSON",
    "RUN_FILE",
    "STAGE_FILE",
    "TMP_DIR",
    "Lock",
    "clear",
    "identity",
    "identity_changes",
    "is_manifest_dir",
    "read_json",
]


def identity(stage: Any, in_dir: Path | None) -> dict[str, Any]:
    """What makes two runs the same run: stage, version, parameters and input directory."""
    return {
        "stage": stage.name,
        "version": stage.version,
        "params": stage.params_dict(),
        "input": str(in_dir) if in_dir else None,
    }


def identity_changes(old: dict[str, Any], new: dict[str, Any]) -> list[str]:
    """What differs between two run identities, one ``key: old -> new`` per difference
    (each changed parameter by its own name)."""
    out = [
        f"{k}: {old.get(k)!r} -> {new.get(k)!r}"
        for k in ("stage", "version", "input")
        if old.get(k) != new.get(k)
    ]
    before, after = old.get("params") or {}, new.get("params") or {}
    out += [
        f"{k}: {before.get(k)!r} -> {after.get(k)!r}"
        for k in {**before, **after}
        if before.get(k) != after.get(k)
    ]
    return out


def read_json(path: Path) -> dict[str, Any] | None:
    """A JSON file's content, or None when it is missing or unreadable."""
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def stage_info(directory: Path) -> dict[str, Any] | None:
    """The stage.json of a finished directory, or None."""
    return read_json(Path(directory) / STAGE_FILE)


def run_identity(directory: Path) -> dict[str, Any] | None:
    """The identity of the run started in ``directory`` (finished or not), or None."""
    return read_json(Path(directory) / RUN_FILE)


def is_manifest_dir(path: Path) -> bool:
    """Whether ``path`` holds (the start of) an audioprep run."""
    return any((path / name).exists() for name in (RUN_FILE, STAGE_FILE, JOURNAL, MANIFEST))


def clear(out_dir: Path) -> None:
    """Remove everything a previous run wrote (``--overwrite``)."""
    for name in RUN_FILES:
        with contextlib.suppress(FileNotFoundError):
            (out_dir / name).unlink()
    for name in RUN_DIRS:
        shutil.rmtree(out_dir / name, ignore_errors=True)


class Lock:
    """An exclusive, non-blocking flock on OUT_DIR/.lock (released even by kill -9)."""

    def __init__(self, directory: Path) -> None:
        path = directory / LOCK_FILE
        self.fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        try:
            fcntl.flock(self.fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(self.fd)
            raise AudioprepError(
                f"another audioprep run is writing to {directory} right now; wait for it to "
                "finish (or stop it), then run this again."
            ) from None
        os.ftruncate(self.fd, 0)
        os.write(self.fd, f"{os.getpid()}\n".encode())

    def release(self) -> None:
        fcntl.flock(self.fd, fcntl.LOCK_UN)
        os.close(self.fd)
