"""Manifest directories: reading, validating and writing ``manifest.jsonl`` and friends.

A manifest directory holds ``manifest.jsonl`` (one JSON record per audio item), the audio
under ``audio/``, ``stage.json`` (written last, marks completion), ``errors.jsonl`` and
``rejected.jsonl``; :mod:`audioprep.layout` owns the names (docs/manifest-format.md).
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from audioprep.errors import AudioprepError, ItemError
from audioprep.ids import is_safe_id
from audioprep.layout import AUDIO_DIR, ERRORS, MANIFEST, REJECTED, STAGE_FILE

__all__ = [
    "AUDIO_DIR",
    "ERRORS",
    "MANIFEST",
    "REJECTED",
    "REQUIRED_FIELDS",
    "STAGE_FILE",
    "Record",
    "atomic_write_text",
    "dumps",
    "iter_raw",
    "manifest_path",
    "read_manifest",
    "resolve_audio",
    "validate_record",
]
REQUIRED_FIELDS = ("id", "audio", "duration", "sample_rate", "channels")

Record = dict[str, Any]


def dumps(record: Record) -> str:
    """Serialise one record as a single JSON line (no trailing newline)."""
    return json.dumps(record, ensure_ascii=False, separators=(",", ":"), allow_nan=False)


def manifest_path(directory: str | os.PathLike[str]) -> Path:
    """Return the path of ``manifest.jsonl`` in ``directory``, or fail with a clear message."""
    path = Path(directory) / MANIFEST
    if not path.is_file():
        raise AudioprepError(
            f"{directory} has no {MANIFEST}, so it is not a finished manifest directory "
            "(make one with `audioprep ingest FILES... DIR`)."
        )
    return path


def iter_raw(path: Path) -> Iterator[tuple[int, Record | None, str]]:
    """Yield ``(line_number, record_or_None, problem)`` for each non-blank line of a JSONL file.

    A line that is not a JSON object yields ``None`` and the reason, so callers can report it.
    """
    with open(path, encoding="utf-8") as fh:
        for lineno, line in enumerate(fh, start=1):
            if not line.strip():
                continue
            try:
                value = json.loads(line)
            except json.JSONDecodeError as exc:
                yield lineno, None, f"line {lineno} is not valid JSON ({exc.msg})"
                continue
            if not isinstance(value, dict):
                yield lineno, None, f"line {lineno} is not a JSON object"
                continue
            yield lineno, value, ""


def read_manifest(directory: str | os.PathLike[str]) -> Iterator[Record]:
    """Stream the records of a manifest directory, one dict at a time.

    >>> for rec in read_manifest("corpus/02-convert"):  # doctest: +SKIP
    ...     print(rec["id"], rec["duration"])
    """
    path = manifest_path(directory)
    for _lineno, record, problem in iter_raw(path):
        if record is None:
            raise AudioprepError(f"{path}: {problem}.")
        yield record


def validate_record(record: Record) -> None:
    """Check the required fields and types of one record; raise ItemError naming the problem."""
    missing = [f for f in REQUIRED_FIELDS if f not in record]
    if missing:
        raise ItemError(f"record lacks required field(s): {', '.join(missing)}")
    if not is_safe_id(record["id"]):
        raise ItemError(f"id {record['id']!r} is not filesystem-safe (letters, digits, ._- only)")
    if not isinstance(record["audio"], str) or not record["audio"]:
        raise ItemError("field 'audio' must be a non-empty relative path")
    for field in ("duration", "sample_rate", "channels"):
        value = record[field]
        if not isinstance(value, int | float) or isinstance(value, bool) or value < 0:
            raise ItemError(f"field {field!r} must be a non-negative number, got {value!r}")


def resolve_audio(directory: str | os.PathLike[str], audio: str) -> Path:
    """Resolve a record's ``audio`` path inside ``directory``, refusing paths that escape it.

    >>> resolve_audio("/corpus", "../../etc/passwd")
    Traceback (most recent call last):
    ...
    audioprep.errors.ItemError: audio path '../../etc/passwd' points outside the manifest directory
    """
    if os.path.isabs(audio) or audio.startswith("~"):
        raise ItemError(f"audio path {audio!r} is absolute; it must be relative to its directory")
    base = Path(directory).resolve()
    target = (base / audio).resolve()
    if target != base and base not in target.parents:
        raise ItemError(f"audio path {audio!r} points outside the manifest directory")
    return target


def atomic_write_text(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` via a temporary file and a rename: readers never see half."""
    tmp = path.with_name(f".{path.name}.tmp")
    with open(tmp, "w", encoding="utf-8") as fh:
        fh.write(text)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)
