"""ljspeech: ``wavs/ID.wav`` and ``metadata.csv`` (``ID|text|text``, no header; wav only).

``metadata.csv`` is written by Python's csv writer with ``|`` as the delimiter and minimal
quoting: a text with a double quote is enclosed in quotes and its quotes doubled, so any CSV
reader (``csv.reader(fh, delimiter="|")``, ``pandas.read_csv(sep="|", header=None)``) reads
exactly three columns and the text as written. Texts without quotes are written bare, as in
the original LJSpeech file.
"""

from __future__ import annotations

import csv

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
        rows = csv.writer(fh, delimiter="|", quotechar='"', lineterminator="\n")
        for record in job.records():
            name = job.place_audio(record, "wavs", ext=".wav")
            stem = name[len("wavs/") : -len(".wav")]
            text = clean_text(record.get("text"))
            rows.writerow([stem, text, normalise_for_tts(text)])
            job.count(record)
