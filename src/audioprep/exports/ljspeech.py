"""ljspeech: ``wavs/ID.wav`` and ``metadata.csv`` (``ID|text|text``, no header; wav only)."""

from __future__ import annotations

from audioprep.errors import UsageError
from audioprep.exports._base import ExportJob
from audioprep.text.checks import normalise_for_tts

NAME = "ljspeech"
HELP = "LJSpeech: wavs/ and metadata.csv (id|text|normalized text), wav input only"


def clean_text(value: object) -> str:
    """The text column: one line, whitespace collapsed, ``|`` (the field separator, which the
    format cannot escape) replaced by a space.

    >>> clean_text("a | b\\nc")
    'a b c'
    """
    text = value if isinstance(value, str) else ""
    return " ".join(text.replace("|", " ").split())


def check(job: ExportJob) -> None:
    odd = [r["id"] for r in job.records() if not r["audio"].lower().endswith(".wav")]
    if odd:
        raise UsageError(
            f"LJSpeech wants wav files; {len(odd)} items are not wav (first: {odd[0]}): "
            "run `audioprep convert IN OUT --format wav` first"
        )


def write(job: ExportJob) -> None:
    with job.atomic_text("metadata.csv") as fh:
        for record in job.records():
            name = job.place_audio(record, "wavs", ext=".wav")
            stem = name[len("wavs/") : -len(".wav")]
            text = clean_text(record.get("text"))
            fh.write(f"{stem}|{text}|{normalise_for_tts(text)}\n")
            job.count(record)
