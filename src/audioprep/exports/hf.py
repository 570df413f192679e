"""hf: a Hugging Face audiofolder: ``audio/`` and ``metadata.jsonl``, for load_dataset.

Columns: ``file_name``, the core record fields, ``transcription``, ``language``, the
``source_*`` attributes, then every field a stage declares (``Stage.record_fields``) that a
record carries: scalars as they are, objects flattened (``quality_snr_db``), lists as JSON.
"""

from __future__ import annotations

from typing import Any

from audioprep.exports._base import ASMR_FIELDS, RECORD_FIELDS, ExportJob, scalar, source_of
from audioprep.manifests.fields import row as field_row
from audioprep.manifests.records import dumps

NAME = "hf"
HELP = "HF audiofolder: audio/ and metadata.jsonl (file_name plus scalar columns)"


def write(job: ExportJob) -> None:
    extra = sorted({k for r in job.records() for k in source_of(r) if k not in ASMR_FIELDS})
    declared = job.stage_fields(skip=("language",))  # language has its own column
    speakers = any(isinstance(r.get("speaker"), str) for r in job.records())
    with job.atomic_text("metadata.jsonl") as fh:
        for record in job.records():
            name = job.place_audio(record)
            row: dict[str, Any] = {"file_name": name}
            row.update({k: scalar(record.get(k)) for k in RECORD_FIELDS})
            text = record.get("text")
            row["transcription"] = text if isinstance(text, str) else None
            row["language"] = scalar(record.get("language"))
            if speakers:  # audioprep speakers: the corpus-wide id and any name
                row["speaker_id"] = scalar(record.get("speaker"))
                row["speaker_name"] = scalar(record.get("speaker_name"))
            source = source_of(record)
            row.update({f"source_{k}": scalar(source.get(k)) for k in ASMR_FIELDS})
            row.update({f"source_{k}": scalar(source.get(k)) for k in extra})
            row.update(field_row(declared, record))
            fh.write(dumps(row) + "\n")  # allow_nan=False: never NaN in the metadata
            job.count(record)
