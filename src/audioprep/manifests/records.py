"""Manifest directories: reading, validating and writing ``manifest.jsonl`` and friends.

A manifest directory holds ``manifest.jsonl`` (one JSON record per audio item), the audio
under ``audio/``, ``stage.json`` (written last, marks completion), ``errors.jsonl`` and
``rejected.jsonl``; :mod:`audioprep.manifests.layout` owns the names (docs/manifest-format.md).
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from audioprep.errors import AudioprepError, ItemError
from audioprep.manifests.ids import is_safe_id
from audioprep.manifests.layout import AUDIO_DIR, ERRORS, MANIFEST, REJECTED, STAGE_FILE

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


#: Characters that ``str.splitlines`` (and JavaScript) take as line breaks although JSON
#: leaves them raw in strings: escaped, so one record stays one line for every reader.
_LINE_BREAKS = str.maketrans({"\x85": "\\u0085", "\u2028": "\\u2028", "\u2029": "\\u2029"})


def dumps(record: Record) -> str:
    """Serialise one record as a single JSON line (no trailing newline, no NaN).

    >>> dumps({"t": "a\u2028b"})
    '{"t":"a\\\\u2028b"}'
    """
    text = json.dumps(record, ensure_ascii=False, separators=(",", ":"), allow_nan=False)
    return text.translate(_LINE_BREAKS)


def manifest_path(directory: str | os.PathLike[str]) -> Path:
    """Return the path of ``manifest.jsonl`` in ``directory``, or fail with a clear message."""
    path = Path(directory) / MANIFEST
    if not path.is_file():
        raise AudioprepError(
            f"{directory} has no {MANIFEST}, so it is not a finished manifest directory "
            "(make one with `audioprep ingest FILES... DIR`)."
        )
    return path


#: Bounds on one manifest line: a longer line, deeper nesting or a longer integer is refused
#: (one errors.jsonl line) instead of exhausting memory or the stack.
MAX_LINE_BYTES = 16 * 1024 * 1024
MAX_DEPTH = 64
MAX_INT_DIGITS = 100
#: Upper bounds of the numeric fields: a week of audio, 1536 kHz, 1024 channels.
MAX_DURATION = 7 * 24 * 3600.0
MAX_SAMPLE_RATE = 1_536_000
MAX_CHANNELS = 1024


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON (use null or a finite number)")


def _bounded_int(text: str) -> int:
    if len(text.lstrip("-")) > MAX_INT_DIGITS:
        raise ValueError(f"an integer of {len(text.lstrip('-'))} digits is too long")
    return int(text)


def _check_value(value: Any, depth: int = 0) -> None:
    """Refuse what json.loads accepts but a record must not hold (iteratively bounded)."""
    if depth > MAX_DEPTH:
        raise ValueError(f"it is nested deeper than {MAX_DEPTH} levels")
    if isinstance(value, str):
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            raise ValueError("a string holds a lone surrogate (\\ud800-\\udfff)") from None
    elif isinstance(value, float):
        if value != value or value in (float("inf"), float("-inf")):
            raise ValueError("it holds NaN or Infinity")
    elif isinstance(value, dict):
        for k, v in value.items():
            _check_value(k, depth + 1)
            _check_value(v, depth + 1)
    elif isinstance(value, list):
        for v in value:
            _check_value(v, depth + 1)


def _max_depth_exceeded(line: str) -> bool:
    """True when brackets outside strings nest deeper than MAX_DEPTH (checked before parsing,
    so 100,000 levels never reach the recursive parser)."""
    if line.count("[") + line.count("{") <= MAX_DEPTH:
        return False
    depth, in_str, escaped = 0, False, False
    for ch in line:
        if in_str:
            if escaped:
                escaped = False
            elif ch == "\\":
                escaped = True
            elif ch == '"':
                in_str = False
        elif ch == '"':
            in_str = True
        elif ch in "[{":
            depth += 1
            if depth > MAX_DEPTH:
                return True
        elif ch in "]}":
            depth -= 1
    return False


def parse_line(raw: bytes | str) -> tuple[Record | None, str]:
    """Parse one manifest line into ``(record, "")`` or ``(None, why it is unusable)``.

    Never raises: invalid UTF-8, NaN/Infinity, lone surrogates, huge integers, deep nesting,
    NUL bytes and non-objects each give a reason instead.

    >>> parse_line(b'{"id": "a", "duration": NaN}')
    (None, 'not valid JSON: NaN is not valid JSON (use null or a finite number)')
    >>> parse_line(b'{"id": "a"}')
    ({'id': 'a'}, '')
    """
    if isinstance(raw, bytes):
        if len(raw) > MAX_LINE_BYTES:
            return None, f"longer than {MAX_LINE_BYTES} bytes"
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            return None, f"not valid UTF-8 (byte {exc.start})"
    else:
        text = raw
    text = text.lstrip("\ufeff")
    if _max_depth_exceeded(text):
        return None, f"nested deeper than {MAX_DEPTH} levels"
    try:
        value = json.loads(text, parse_constant=_no_constant, parse_int=_bounded_int)
    except json.JSONDecodeError as exc:
        return None, f"not valid JSON ({exc.msg})"
    except (ValueError, RecursionError) as exc:
        return None, f"not valid JSON: {exc}"
    if not isinstance(value, dict):
        return None, "not a JSON object"
    try:
        _check_value(value)
    except (ValueError, RecursionError) as exc:
        return None, f"not usable: {exc}"
    return value, ""


def iter_raw(path: Path) -> Iterator[tuple[int, Record | None, str]]:
    """Yield ``(line_number, record_or_None, problem)`` for each non-blank line of a JSONL file.

    A line that is not a usable JSON object yields ``None`` and the reason, so callers can
    report it; reading never raises on bad content. A UTF-8 byte-order mark is ignored.
    """
    with open(path, "rb") as fh:
        for lineno, line in enumerate(fh, start=1):
            if lineno == 1 and line.startswith(b"\xef\xbb\xbf"):
                line = line[3:]
            if not line.strip():
                continue
            record, problem = parse_line(line)
            if record is None:
                yield lineno, None, f"line {lineno} is {problem}"
                continue
            yield lineno, record, ""


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


def iter_checked(
    directory: str | os.PathLike[str],
) -> Iterator[tuple[int, Record | None, str]]:
    """Each line of a manifest directory as ``(line_number, record, "")`` when the record is
    valid (:func:`validate_record` and :func:`resolve_audio`), else ``(line_number, None, why)``.

    For readers that keep going past bad records (export, report, info).
    """
    path = manifest_path(directory)
    for lineno, record, problem in iter_raw(path):
        if record is not None:
            try:
                validate_record(record)
                resolve_audio(directory, record["audio"])
            except ItemError as exc:
                problem = f"line {lineno} ({_short_id(record)}): {exc}"
                record = None
        yield lineno, record, problem


def _short_id(record: Record) -> str:
    value = record.get("id")
    return f"id {value[:60]!r}" if isinstance(value, str) else "no usable id"


def _finite_number(record: Record, field: str, *, integer: bool, low: float, high: float) -> None:
    value = record[field]
    ok = isinstance(value, int) if integer else isinstance(value, int | float)
    if isinstance(value, bool) or not ok:
        kind = "a whole number" if integer else "a number"
        raise ItemError(f"field {field!r} must be {kind}, got {_show(value)}")
    if not (low <= value <= high) or value != value:
        raise ItemError(f"field {field!r} must be between {low:g} and {high:g}, got {_show(value)}")


def _show(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def validate_record(record: Record) -> None:
    """Check the required fields and types of one record; raise ItemError naming the problem.

    >>> validate_record({"id": "a", "audio": "audio/a.wav", "duration": 1.5,
    ...                  "sample_rate": 0, "channels": 1})
    Traceback (most recent call last):
    ...
    audioprep.errors.ItemError: field 'sample_rate' must be between 1 and 1.536e+06, got 0
    """
    missing = [f for f in REQUIRED_FIELDS if f not in record]
    if missing:
        raise ItemError(f"record lacks required field(s): {', '.join(missing)}")
    if not is_safe_id(record["id"]):
        raise ItemError(
            f"id {_show(record['id'])} is not filesystem-safe (letters, digits, ._- only)"
        )
    audio = record["audio"]
    if not isinstance(audio, str) or not audio:
        raise ItemError("field 'audio' must be a non-empty relative path")
    if any(ord(c) < 32 or ord(c) == 127 for c in audio):
        raise ItemError("field 'audio' holds a control character (a NUL byte or a newline)")
    _finite_number(record, "duration", integer=False, low=0.0, high=MAX_DURATION)
    _finite_number(record, "sample_rate", integer=True, low=1, high=MAX_SAMPLE_RATE)
    _finite_number(record, "channels", integer=True, low=1, high=MAX_CHANNELS)


def resolve_audio(directory: str | os.PathLike[str], audio: str) -> Path:
    """Resolve a record's ``audio`` path inside ``directory``, refusing paths that escape it.

    >>> resolve_audio("/corpus", "../../etc/passwd")
    Traceback (most recent call last):
    ...
    audioprep.errors.ItemError: audio path '../../etc/passwd' points outside the manifest directory
    """
    if not isinstance(audio, str) or not audio:
        raise ItemError("field 'audio' must be a non-empty relative path")
    if "\0" in audio:
        raise ItemError("audio path holds a NUL byte")
    if os.path.isabs(audio) or audio.startswith("~"):
        raise ItemError(f"audio path {audio!r} is absolute; it must be relative to its directory")
    try:
        base = Path(directory).resolve()
        target = (base / audio).resolve()
    except (OSError, RuntimeError, ValueError) as exc:  # a symlink loop, a name too long
        reason = "a symlink loop" if "loop" in str(exc).lower() else str(exc)
        raise ItemError(f"audio path {audio!r} cannot be resolved ({reason})") from None
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
