"""Export a manifest directory to training formats: HF audiofolder, NeMo, LJSpeech, CSV.

Each export is a folder of its own: the audio is hard-linked into it (copied across file
systems) and the metadata written beside it, so it can be moved or uploaded alone.
"""

from __future__ import annotations

import contextlib
import csv
import json
import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from audioprep.crawl.schema import SCHEMA_FIELDS
from audioprep.errors import UsageError
from audioprep.manifest import Record, read_manifest, resolve_audio
from audioprep.stage import link_or_copy

FORMATS = ("hf", "nemo", "ljspeech", "csv", "spectrogram-captions")
#: The ASMR corpus attributes, in order (from ``source``).
ASMR_FIELDS = SCHEMA_FIELDS
#: Record fields copied as columns into hf/csv exports when present (scalars only).
RECORD_FIELDS = (
    "id",
    "duration",
    "sample_rate",
    "channels",
    "parent",
    "offset",
    "label",
    "text",
    "speaker_similarity",
    "speech_seconds",
)


def _place(src: Path, dest: Path) -> None:
    """Hard-link ``src`` to ``dest`` (copy across file systems)."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    link_or_copy(src, dest)


def _scalar(value: Any) -> Any:
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    return json.dumps(value, ensure_ascii=False)


def asmr_row(record: Record) -> dict[str, Any]:
    """The ASMR attributes of a record: from ``source``, the top-level ``comment`` if any.

    >>> asmr_row({"id": "a", "source": {"id": "yt1", "title": "Rain", "comment": ""}})["title"]
    'Rain'
    """
    source = record.get("source") or {}
    row = {k: source.get(k) for k in ASMR_FIELDS}
    row["item_id"] = record["id"]
    if source.get("comment") in (None, "") and record.get("comment") not in (None, ""):
        row["comment"] = record["comment"]
    return row


class _Records:
    """The records of a manifest directory, read afresh each time they are iterated."""

    def __init__(self, in_dir: Path) -> None:
        self.in_dir = in_dir
        next(iter(self), None)  # a missing or broken manifest fails here, before any writing

    def __iter__(self) -> Iterator[Record]:
        return read_manifest(self.in_dir)


def _prepare(out: Path, overwrite: bool) -> None:
    if out.exists() and any(out.iterdir()):
        if not overwrite:
            raise UsageError(f"{out} exists and is not empty; pass --overwrite to replace it")
        shutil.rmtree(out)
    out.mkdir(parents=True, exist_ok=True)


@contextlib.contextmanager
def _atomic_text(path: Path) -> Iterator[Any]:
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w", encoding="utf-8", newline="") as fh:
        yield fh
    os.replace(tmp, path)


def export(
    in_dir: str | os.PathLike[str],
    out: str | os.PathLike[str],
    *,
    fmt: str,
    overwrite: bool = False,
    caption: str | None = None,
) -> dict[str, Any]:
    """Write ``in_dir`` as ``fmt`` into the folder ``out``; return counts for the terminal.

    - ``hf``: ``audio/`` and ``metadata.jsonl`` (``file_name`` plus scalar columns: the record's
      fields and the ASMR attributes as ``source_*``), for ``load_dataset("audiofolder")``;
    - ``nemo``: ``audio/`` and ``manifest.json`` lines ``{audio_filepath, duration, offset,
      text?}`` with paths relative to the manifest;
    - ``ljspeech``: ``wavs/ID.wav`` and ``metadata.csv`` (``id|text|text``, no header; wav only);
    - ``csv``: ``metadata.csv`` with a header: file, duration and the ASMR attributes;
    - ``spectrogram-captions``: mel spectrogram PNGs and ``metadata.jsonl`` captions from the
      ``caption`` template (see :mod:`audioprep.exports.spectrogram_captions`).
    """
    if fmt not in FORMATS:
        raise UsageError(f"--format must be one of {', '.join(FORMATS)}, not {fmt!r}")
    if caption is not None and fmt != "spectrogram-captions":
        raise UsageError("--caption is for --format spectrogram-captions")
    in_dir, out = Path(in_dir), Path(out)
    records = _Records(in_dir)  # streamed: once to check, once to write
    if fmt == "ljspeech":
        odd = [r["id"] for r in records if not r["audio"].lower().endswith(".wav")]
        if odd:
            raise UsageError(
                f"LJSpeech wants wav files; {len(odd)} items are not wav (first: {odd[0]}): "
                "run `audioprep convert IN OUT --format wav` first"
            )
    if fmt == "spectrogram-captions":
        from audioprep.exports import spectrogram_captions

        spectrogram_captions.caption_fields(caption or spectrogram_captions.DEFAULT_CAPTION)
    _prepare(out, overwrite)
    stats: dict[str, Any] = {"format": fmt, "items": 0, "seconds": 0.0, "without_text": 0}
    if fmt == "spectrogram-captions":
        spectrogram_captions.write(in_dir, out, records, stats, caption=caption)
        stats["seconds"] = round(stats["seconds"], 3)
        return stats
    writer = {"hf": _hf, "nemo": _nemo, "ljspeech": _ljspeech, "csv": _csv}[fmt]
    writer(in_dir, out, records, stats)
    stats["seconds"] = round(stats["seconds"], 3)
    return stats


def _count(stats: dict[str, Any], record: Record) -> None:
    stats["items"] += 1
    stats["seconds"] += float(record.get("duration") or 0.0)
    if not record.get("text"):
        stats["without_text"] += 1


def _hf(in_dir: Path, out: Path, records: _Records, stats: dict[str, Any]) -> None:
    extra = sorted({k for r in records for k in (r.get("source") or {}) if k not in ASMR_FIELDS})
    with _atomic_text(out / "metadata.jsonl") as fh:
        for record in records:
            name = f"audio/{Path(record['audio']).name}"
            _place(resolve_audio(in_dir, record["audio"]), out / name)
            row: dict[str, Any] = {"file_name": name}
            row.update({k: _scalar(record.get(k)) for k in RECORD_FIELDS})
            source = record.get("source") or {}
            row.update({f"source_{k}": _scalar(source.get(k)) for k in ASMR_FIELDS})
            row.update({f"source_{k}": _scalar(source.get(k)) for k in extra})
            fh.write(json.dumps(row, ensure_ascii=False) + "\n")
            _count(stats, record)


def _nemo(in_dir: Path, out: Path, records: _Records, stats: dict[str, Any]) -> None:
    with _atomic_text(out / "manifest.json") as fh:
        for record in records:
            name = f"audio/{Path(record['audio']).name}"
            _place(resolve_audio(in_dir, record["audio"]), out / name)
            line: dict[str, Any] = {
                "audio_filepath": name,
                "duration": record["duration"],
                "offset": 0.0,
            }
            if record.get("text"):
                line["text"] = record["text"]
            if record.get("label"):
                line["label"] = record["label"]
            fh.write(json.dumps(line, ensure_ascii=False) + "\n")
            _count(stats, record)


def _ljspeech(in_dir: Path, out: Path, records: _Records, stats: dict[str, Any]) -> None:
    with _atomic_text(out / "metadata.csv") as fh:
        for record in records:
            _place(resolve_audio(in_dir, record["audio"]), out / "wavs" / f"{record['id']}.wav")
            text = " ".join(str(record.get("text") or "").split())
            fh.write(f"{record['id']}|{text}|{text}\n")
            _count(stats, record)


def _csv(in_dir: Path, out: Path, records: _Records, stats: dict[str, Any]) -> None:
    fields = ["file", "item_id", "duration", *ASMR_FIELDS]
    with _atomic_text(out / "metadata.csv") as fh:
        writer = csv.DictWriter(fh, fieldnames=fields, extrasaction="ignore")
        writer.writeheader()
        for record in records:
            name = f"audio/{Path(record['audio']).name}"
            _place(resolve_audio(in_dir, record["audio"]), out / name)
            row = {k: ("" if v is None else v) for k, v in asmr_row(record).items()}
            writer.writerow({**row, "file": name, "duration": record["duration"]})
            _count(stats, record)
