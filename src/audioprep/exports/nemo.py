"""nemo: a NeMo manifest (``manifest.json`` lines {audio_filepath, duration, offset, text?})."""

from __future__ import annotations

from typing import Any

from audioprep.exports._base import ExportJob
from audioprep.manifests.records import dumps

NAME = "nemo"
HELP = "NeMo: audio/ and manifest.json, paths relative to the manifest"


def write(job: ExportJob) -> None:
    with job.atomic_text("manifest.json") as fh:
        for record in job.records():
            line: dict[str, Any] = {
                "audio_filepath": job.place_audio(record),
                "duration": record["duration"],
                "offset": 0.0,
            }
            if isinstance(record.get("text"), str) and record["text"]:
                line["text"] = record["text"]
            if isinstance(record.get("speaker"), str) and record["speaker"]:
                line["speaker"] = record["speaker"]
            if isinstance(record.get("label"), str) and record["label"]:
                line["label"] = record["label"]
            fh.write(dumps(line) + "\n")
            job.count(record)
