"""vctk: a multi-speaker folder layout, ``wav/<speaker>/<id>.wav`` and ``txt/<speaker>/<id>.txt``.

The speaker is the record's ``speaker`` (``audioprep speakers``); a text file is written where
the record has text. Records without a speaker are left out (export-errors.jsonl).
"""

from __future__ import annotations

from audioprep.errors import UsageError
from audioprep.exports._base import ExportJob
from audioprep.manifests.ids import is_safe_id, slugify
from audioprep.manifests.records import Record

NAME = "vctk"
HELP = "VCTK-style: wav/<speaker>/<id>.wav and txt/<speaker>/<id>.txt (wav input, speaker ids)"


def speaker_folder(record: Record) -> str:
    """The record's speaker as a safe folder name.

    >>> speaker_folder({"speaker": "spk03"}), speaker_folder({"speaker": "../Ann B"})
    ('spk03', 'Ann_B')
    """
    value = str(record.get("speaker") or "")
    return value if is_safe_id(value) else slugify(value, max_len=64)


def skip_reason(record: Record) -> str | None:
    if not isinstance(record.get("speaker"), str) or not record["speaker"]:
        return "no speaker: run `audioprep speakers` before exporting as vctk"
    return None


def check(job: ExportJob) -> None:
    odd = [r["id"] for r in job.records() if not r["audio"].lower().endswith(".wav")]
    if odd:
        raise UsageError(
            f"vctk wants wav files; {len(odd)} items are not wav (first: {odd[0]}): "
            "run `audioprep convert IN OUT --format wav` first"
        )


def write(job: ExportJob) -> None:
    for record in job.records():
        folder = speaker_folder(record)
        name = job.place_audio(record, f"wav/{folder}", ext=".wav")
        text = record.get("text")
        if isinstance(text, str) and text.strip():
            stem = name.rsplit("/", 1)[1][: -len(".wav")]
            (job.out / "txt" / folder).mkdir(parents=True, exist_ok=True)
            with job.atomic_text(f"txt/{folder}/{stem}.txt") as fh:
                fh.write(" ".join(text.split()) + "\n")
        job.count(record)
