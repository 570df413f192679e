"""What every export format shares: checked records, safe and collision-free file names,
atomic metadata files, spreadsheet-safe cells and JSON without NaN.

A format module (``exports/FORMAT.py``) defines ``NAME``, ``HELP`` and ``write(job)``, and
optionally ``check(job)`` (refuse the whole export before anything is written, raising
UsageError) and ``skip_reason(record) -> str | None`` (leave one record out, with a reason).
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from audioprep.core.stage import link_or_copy
from audioprep.crawl.schema import SCHEMA_FIELDS
from audioprep.manifests.fields import CORE_FIELDS, RecordField
from audioprep.manifests.ids import is_safe_id, slugify
from audioprep.manifests.records import Record, dumps, iter_checked, resolve_audio

#: Skipped records of an export (bad lines, missing audio), one JSON line each, in OUT.
SKIPPED_FILE = "export-errors.jsonl"
#: The ASMR corpus attributes, in order (from ``source``).
ASMR_FIELDS = SCHEMA_FIELDS
#: Record fields every hf export carries as columns (the manifest format's own fields).
RECORD_FIELDS = tuple(f.name for f in CORE_FIELDS)
#: errno values of a disk that is full or cannot be written: these end the whole export.
_DISK_ERRNOS = {errno.ENOSPC, errno.EROFS, errno.EDQUOT, errno.EFBIG, errno.EACCES, errno.EPERM}
_SAFE_EXT = re.compile(r"^\.[a-z0-9]{1,5}$")
#: First characters that make a spreadsheet read a cell as a formula (OWASP's list).
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r", "\n")


def spreadsheet_safe(value: Any) -> Any:
    """Escape a CSV cell a spreadsheet would run as a formula: prefix it with ``'``.

    Only text is escaped (numbers stay numbers): a cell starting with ``= + - @``, a tab or
    a carriage return gets a leading apostrophe, which Excel, LibreOffice and Google Sheets
    show as text and hide.

    >>> spreadsheet_safe("=HYPERLINK(\\"http://x\\")"), spreadsheet_safe("-2 dB")
    ('\\'=HYPERLINK("http://x")', "'-2 dB")
    >>> spreadsheet_safe(-2)
    -2
    """
    if isinstance(value, str) and value.startswith(FORMULA_STARTS):
        return "'" + value
    return value


def scalar(value: Any) -> Any:
    """A column value: scalars as they are, anything else as compact JSON text."""
    if value is None or isinstance(value, str | int | float | bool):
        return value
    return dumps(value)


def asmr_row(record: Record) -> dict[str, Any]:
    """The ASMR attributes of a record: from ``source``, the top-level ``comment`` if any.

    >>> asmr_row({"id": "a", "source": {"id": "yt1", "title": "Rain", "comment": ""}})["title"]
    'Rain'
    """
    source = record.get("source")
    source = source if isinstance(source, dict) else {}
    row = {k: source.get(k) for k in ASMR_FIELDS}
    row["item_id"] = record["id"]
    if source.get("comment") in (None, "") and record.get("comment") not in (None, ""):
        row["comment"] = record["comment"]
    return row


def declared_fields() -> tuple[RecordField, ...]:
    """The record fields the registered stages declare (``Stage.record_fields``), in stage
    order, the core fields and fields no export carries left out."""
    from audioprep.core import registry

    return registry.record_fields(exported=True)


def source_of(record: Record) -> dict[str, Any]:
    source = record.get("source")
    return source if isinstance(source, dict) else {}


class ExportJob:
    """One export from ``in_dir`` into ``out``: the records, names given out, and counts."""

    def __init__(self, in_dir: Path, out: Path, fmt: str) -> None:
        self.in_dir = in_dir
        self.out = out
        self.format = fmt
        self.skip_reason = lambda record: None  # set by export() from the format module
        self.only: set[str] | None = None  # --split-by: the ids of this split
        self.skipped: list[dict[str, Any]] = []
        self._skipped_lines: set[int] = set()
        self._names: set[str] = set()
        self._stage_fields: list[RecordField] | None = None
        self.caption: str | None = None  # spectrogram-captions' --caption
        self.shard_size: int | None = None  # webdataset's --shard-size
        self._placed: list[Path] | None = None
        self.stats: dict[str, Any] = {
            "format": fmt,
            "items": 0,
            "seconds": 0.0,
            "without_text": 0,
            "skipped": 0,
        }

    # -- records -----------------------------------------------------------------------------
    def scan(self) -> None:
        """First pass (nothing written yet): find the lines that cannot be exported."""
        for lineno, record, problem in iter_checked(self.in_dir):
            if record is not None and self.only is not None and record["id"] not in self.only:
                self._skipped_lines.add(lineno)  # another split's record
                continue
            if record is not None:
                problem = self._problem(record)
                if problem:
                    problem = f"line {lineno} (id {record['id']!r}): {problem}"
            if problem:
                self._skipped_lines.add(lineno)
                self.skipped.append({"line": lineno, "reason": problem})
        self.stats["skipped"] = len(self.skipped)

    def _problem(self, record: Record) -> str | None:
        path = resolve_audio(self.in_dir, record["audio"])
        if not path.is_file():
            return f"audio file {record['audio']!r} is missing"
        return self.skip_reason(record)

    def records(self) -> Iterator[Record]:
        """The exportable records in manifest order, read afresh each time."""
        for lineno, record, _ in iter_checked(self.in_dir):
            if record is not None and lineno not in self._skipped_lines:
                yield record

    def stage_fields(self, *, skip: tuple[str, ...] = ()) -> list[RecordField]:
        """The declared stage fields (see :func:`declared_fields`) that at least one record
        of this export carries: their columns are exported (flattened or as JSON)."""
        if self._stage_fields is None:
            declared = declared_fields()
            found: set[str] = set()
            for record in self.records():
                found.update(f.name for f in declared if record.get(f.name) is not None)
            self._stage_fields = [f for f in declared if f.name in found]
        return [f for f in self._stage_fields if f.name not in skip]

    # -- names and files ---------------------------------------------------------------------
    def stem(self, record: Record, *, dotless: bool = False) -> str:
        """A file stem for ``record`` unique in this export: its id when that is a safe id
        not given out yet (compared case-insensitively), else a slug of it plus a hash of the
        id and audio path. Never a raw id, never the audio's base name. ``dotless``: dots
        become underscores BEFORE the uniqueness check (a WebDataset key), so ``a.b`` and
        ``a_b`` still get two names."""
        item_id = str(record.get("id"))
        stem = item_id if is_safe_id(item_id) and len(item_id) <= 120 else ""
        if dotless:
            stem = stem.replace(".", "_")
        n = 0
        while not stem or stem.lower() in self._names:
            key = f"{item_id}\0{record.get('audio')}\0{n}"
            digest = hashlib.sha1(key.encode("utf-8")).hexdigest()[:8]
            stem = f"{slugify(item_id, max_len=100)}-{digest}"
            if dotless:
                stem = stem.replace(".", "_")
            n += 1
        self._names.add(stem.lower())
        return stem

    @contextlib.contextmanager
    def item(self, record: Record) -> Iterator[None]:
        """Write one record's share of the export; if it fails (audio that cannot be decoded,
        a field of the wrong shape) the files it placed are removed and the record is listed
        in ``export-errors.jsonl`` with the reason, and the export goes on. A full or read-only
        disk still ends the whole export (exit 3).

        >>> job = ExportJob(Path("."), Path("."), "csv")
        >>> with job.item({"id": "a"}):
        ...     raise ValueError("words must be objects")
        >>> job.skipped[0]["reason"]
        "id 'a': words must be objects"
        """
        placed: list[Path] = []
        self._placed = placed
        try:
            yield
        except OSError as exc:
            if exc.errno in _DISK_ERRNOS:
                raise
            self._skip_item(record, placed, exc)
        except Exception as exc:  # noqa: BLE001 - one item's failure, whatever it is
            self._skip_item(record, placed, exc)
        finally:
            self._placed = None

    def _skip_item(self, record: Record, placed: list[Path], exc: BaseException) -> None:
        for path in placed:
            with contextlib.suppress(OSError):
                path.unlink()
        reason = " ".join(str(exc).split())[:300] or type(exc).__name__
        self.skipped.append(
            {"id": record.get("id"), "reason": f"id {record.get('id')!r}: {reason}"}
        )
        self.stats["skipped"] = len(self.skipped)

    def place_audio(self, record: Record, folder: str = "audio", *, ext: str | None = None) -> str:
        """Hard-link (or copy) the record's audio into ``OUT/folder/`` under a unique safe name;
        return that name relative to OUT."""
        source = resolve_audio(self.in_dir, record["audio"])
        if ext is None:
            ext = Path(record["audio"]).suffix.lower()
            ext = ext if _SAFE_EXT.match(ext) else ".audio"
        name = f"{folder}/{self.stem(record)}{ext}"
        dest = self.out / name
        dest.parent.mkdir(parents=True, exist_ok=True)
        link_or_copy(source, dest)
        if getattr(self, "_placed", None) is not None:
            self._placed.append(dest)
        return name

    @contextlib.contextmanager
    def atomic_text(self, name: str) -> Iterator[Any]:
        """Write ``OUT/name`` through a hidden temporary file renamed at the end; on failure
        the temporary file is removed and ``name`` is not created."""
        path = self.out / name
        tmp = path.with_name(f".{path.name}.tmp")
        try:
            with open(tmp, "w", encoding="utf-8", newline="") as fh:
                yield fh
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, path)
        finally:
            with contextlib.suppress(FileNotFoundError):
                tmp.unlink()

    def count(self, record: Record) -> None:
        self.stats["items"] += 1
        self.stats["seconds"] += float(record.get("duration") or 0.0)
        if not record.get("text"):
            self.stats["without_text"] += 1

    def write_skipped(self) -> None:
        if self.skipped:
            with self.atomic_text(SKIPPED_FILE) as fh:
                for entry in self.skipped:
                    fh.write(dumps(entry) + "\n")


# -- --split-by -------------------------------------------------------------------------------
SPLITS = ("train", "dev", "test")


def parse_ratios(text: str) -> tuple[float, float, float]:
    """``--split-ratio``: three non-negative numbers for train, dev, test, scaled to sum to 1.

    >>> parse_ratios("8,1,1")
    (0.8, 0.1, 0.1)
    """
    try:
        values = [float(v) for v in text.split(",")]
    except ValueError:
        values = []
    if len(values) != 3 or min(values) < 0 or sum(values) <= 0:
        raise ValueError(f"--split-ratio {text!r}: give three numbers, e.g. 0.8,0.1,0.1")
    total = sum(values)
    return tuple(round(v / total, 6) for v in values)  # type: ignore[return-value]


def _key(text: str) -> str:
    return hashlib.sha1(text.encode("utf-8")).hexdigest()


def assign_splits(
    records: list[tuple[str, str, float]], by: str, ratios: tuple[float, float, float]
) -> dict[str, str]:
    """Item id -> train, dev or test, from ``(id, speaker, seconds)`` triples; stable (a hash
    order, no random state).

    ``by="speaker"``: each speaker's clips all in one split, speakers dealt to the split
    furthest below its share of the hours; ``by="within-speaker"``: each speaker's clips
    split by the ratios (by count), so every speaker is in every split it has clips for.

    >>> rows = [(f"{s}{i}", s, 1.0) for s in "abcdefghij" for i in range(4)]
    >>> out = assign_splits(rows, "speaker", (0.8, 0.1, 0.1))
    >>> all(len({out[f"{s}{i}"] for i in range(4)}) == 1 for s in "abcdefghij")
    True
    >>> sorted(set(assign_splits(rows, "within-speaker", (0.5, 0.25, 0.25)).values()))
    ['dev', 'test', 'train']
    """
    groups: dict[str, list[tuple[str, float]]] = {}
    for item_id, speaker, seconds in records:
        groups.setdefault(speaker, []).append((item_id, seconds))
    out: dict[str, str] = {}
    if by == "speaker":
        total = sum(sec for _, _, sec in records) or 1.0
        have = [0.0, 0.0, 0.0]
        for speaker in sorted(groups, key=_key):
            seconds = sum(sec for _, sec in groups[speaker])
            want = [r * total - h for r, h in zip(ratios, have, strict=True)]
            k = max(range(3), key=lambda i: (want[i] if ratios[i] > 0 else float("-inf"), -i))
            have[k] += seconds
            out.update({item_id: SPLITS[k] for item_id, _ in groups[speaker]})
        return out
    if by != "within-speaker":
        raise ValueError(f"--split-by must be speaker or within-speaker, not {by!r}")
    for items in groups.values():
        ordered = sorted(items, key=lambda it: _key(it[0]))
        n = len(ordered)
        # round half up: a speaker's one clip goes to train
        bounds = [int(n * ratios[0] + 0.5), int(n * (ratios[0] + ratios[1]) + 0.5)]
        for i, (item_id, _) in enumerate(ordered):
            out[item_id] = SPLITS[0 if i < bounds[0] else 1 if i < bounds[1] else 2]
    return out
