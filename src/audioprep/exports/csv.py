"""csv: ``metadata.csv`` with a header: file, item id, duration, the ASMR attributes, then
every field a stage declares that a record carries (objects flattened, lists as JSON).

Cells a spreadsheet would run as a formula are escaped (see :func:`spreadsheet_safe`).
"""

from __future__ import annotations

import csv as _csv

from audioprep.exports._base import ASMR_FIELDS, ExportJob, asmr_row, scalar, spreadsheet_safe
from audioprep.manifests.fields import columns
from audioprep.manifests.fields import row as field_row

NAME = "csv"
HELP = "CSV: audio/ and metadata.csv (file, duration, ASMR attributes, stage fields), formula-safe"


def write(job: ExportJob) -> None:
    declared = job.stage_fields()
    fields = ["file", "item_id", "duration", *ASMR_FIELDS]
    fields += [c for c in columns(declared) if c not in fields]
    if any(isinstance(r.get("speaker"), str) for r in job.records()):
        fields += ["speaker", "speaker_name"]  # audioprep speakers
    with job.atomic_text("metadata.csv") as fh:
        writer = _csv.DictWriter(fh, fieldnames=fields, extrasaction="ignore")
        writer.writeheader()
        for record in job.records():
            name = job.place_audio(record)
            row = {k: ("" if v is None else v) for k, v in asmr_row(record).items()}
            row = {**field_row(declared, record), **row}
            row = {**row, "file": name, "duration": record["duration"]}
            row.update({k: record.get(k) or "" for k in ("speaker", "speaker_name")})
            writer.writerow({k: spreadsheet_safe(scalar(v)) for k, v in row.items()})
            job.count(record)
