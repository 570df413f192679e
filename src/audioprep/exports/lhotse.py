"""lhotse: recordings, supervisions (text, language, speaker, word alignments) and cuts.

``recordings.jsonl.gz``, ``supervisions.jsonl.gz`` and ``cuts.jsonl.gz`` beside ``audio/``;
each loads with ``lhotse.load_manifest``. Audio paths are relative to the export folder
(``audio/NAME``), so the folder can be moved: load with
``load_manifest(p).with_path_prefix(EXPORT_DIR)`` or from inside the folder.
"""

from __future__ import annotations

from typing import Any

from audioprep.errors import AudioprepError
from audioprep.manifests.records import Record

NAME = "lhotse"
HELP = "Lhotse: recordings, supervisions (text, language, speaker, words) and cuts manifests"
#: Record fields kept in each supervision's ``custom`` when present (scalars).
CUSTOM_FIELDS = ("language_prob", "label", "parent", "offset", "speaker_similarity")


def speaker_of(record: Record) -> str | None:
    """The record's speaker: its ``speaker`` field, else its source's channel or author."""
    source = record.get("source") if isinstance(record.get("source"), dict) else {}
    for value in (record.get("speaker"), source.get("channel"), source.get("author")):
        if isinstance(value, str) and value:
            return value
    return None


def supervision(record: Record, recording_id: str, duration: float) -> dict[str, Any]:
    """The supervision of one clip as lhotse's dict: the whole clip, its text and words.

    >>> s = supervision({"id": "a", "text": "hi there", "language": "en",
    ...                  "words": [{"word": "hi", "start": 0.1, "end": 0.3, "probability": 0.9}]},
    ...                 "a", 1.0)
    >>> s["text"], s["alignment"]["word"][0]
    ('hi there', {'symbol': 'hi', 'start': 0.1, 'duration': 0.2, 'score': 0.9})
    """
    sup: dict[str, Any] = {
        "id": recording_id,
        "recording_id": recording_id,
        "start": 0.0,
        "duration": round(duration, 6),
        "channel": 0,
    }
    if isinstance(record.get("text"), str):
        sup["text"] = record["text"]
    if isinstance(record.get("language"), str):
        sup["language"] = record["language"]
    speaker = speaker_of(record)
    if speaker:
        sup["speaker"] = speaker
    words = record.get("words")
    if isinstance(words, list) and words:
        sup["alignment"] = {
            "word": [
                {
                    "symbol": str(w.get("word", "")),
                    "start": round(float(w["start"]), 3),
                    "duration": round(max(0.0, float(w["end"]) - float(w["start"])), 3),
                    "score": None if w.get("probability") is None else float(w["probability"]),
                }
                for w in words
            ]
        }
    custom = {k: record[k] for k in CUSTOM_FIELDS if isinstance(record.get(k), str | int | float)}
    custom["item_id"] = record["id"]
    sup["custom"] = custom
    return sup


def write(job: Any) -> None:
    try:
        from lhotse import CutSet, Recording, RecordingSet, SupervisionSegment, SupervisionSet
    except ImportError as exc:
        raise AudioprepError(
            f"lhotse is not installed ({exc}); run `pip install 'audioprep[transcribe]'`."
        ) from None
    recordings, supervisions = [], []
    for record in job.records():
        with job.item(record):  # one bad record (undecodable audio, odd words) is skipped
            name = job.place_audio(record)
            rec_id = name.split("/", 1)[1].rsplit(".", 1)[0]
            rec = Recording.from_file(str(job.out / name), recording_id=rec_id)
            source = rec.sources[0]
            source.source = name  # relative to the export folder
            sup = supervision(record, rec_id, rec.duration)
            alignment = sup.pop("alignment", None)
            seg = SupervisionSegment(**sup)
            if alignment:
                from lhotse.supervision import AlignmentItem

                seg.alignment = {"word": [AlignmentItem(**w) for w in alignment["word"]]}
            recordings.append(rec)
            supervisions.append(seg)
            job.count(record)
    rset = RecordingSet.from_recordings(recordings)
    sset = SupervisionSet.from_segments(supervisions)
    for filename, manifest in (
        ("recordings.jsonl.gz", rset),
        ("supervisions.jsonl.gz", sset),
        ("cuts.jsonl.gz", CutSet.from_manifests(recordings=rset, supervisions=sset)),
    ):
        tmp = job.out / f".{filename}.tmp.jsonl.gz"
        manifest.to_file(tmp)
        tmp.replace(job.out / filename)
