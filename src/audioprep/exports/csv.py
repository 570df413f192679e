"""csv: ``metadata.csv`` with a header: file, item id, duration and the ASMR attributes.

Cells a spreadsheet would run as a formula are escaped (see :func:`spreadsheet_safe`).
"""

from __future__ import annotations

import csv as _csv

from audioprep.exports._base import ASMR_FIELDS, ExportJob, asmr_row, scalar, spreadsheet_safe

NAME = "csv"
HELP = "CSV: audio/ and metadata.csv (file, duration, ASMR attributes), formula-safe"


def write(job: ExportJob) -> None:
    fields = ["file", "item_id", "duration", *ASMR_FIELDS]
    if any(isinstance(r.get("speaker"), str) for r in job.records()):
        fields += ["speaker", "speaker_name"]  # audioprep speakers
    with job.atomic_text("metadata.csv") as fh:
        writer = _csv.DictWriter(fh, fieldnames=fields, extrasaction="ignore")
        writer.writeheader()
        for record in job.records():
            name = job.place_audio(record)
            row = {k: ("" if v is None else v) for k, v in asmr_row(record).items()}
            row = {**row, "file": name, "duration": record["duration"]}
            row.update({k: record.get(k) or "" for k in ("speaker", "speaker_name")})
            writer.writerow({k: spreadsheet_safe(scalar(v)) for k, v in row.items()})
            job.count(record)
