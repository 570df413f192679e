"""Where a record starts in the file it was ingested from (``source_offset``, seconds).

Every stage that cuts a record into a child starting ``start`` seconds into its parent (trim,
slice, speaker-filter's split) takes the child's ``source_offset`` from :func:`child_offset`;
source stages (ingest, and convert for crawled items) start at 0; stages that keep the timing
(separate, segment, denoise) pass the field on unchanged. So a kept or rejected clip can be
found in the original episode or video at ``source_offset`` seconds, to the sample.
"""

from __future__ import annotations

import math
from typing import Any

from audioprep.errors import ItemError

#: Seconds are rounded to a microsecond: under a twentieth of a sample at 48 kHz.
DIGITS = 6


def child_offset(parent: dict[str, Any], start: float = 0.0) -> dict[str, float]:
    """``{"source_offset": ...}`` for a child starting ``start`` seconds into ``parent``.

    A parent without the field (a manifest written before it existed, a crawled item) counts
    as starting at 0 of its source.

    >>> child_offset({"source_offset": 5.0}, 1.25)
    {'source_offset': 6.25}
    >>> child_offset({})
    {'source_offset': 0.0}
    """
    base = seconds_field(parent, "source_offset")
    return {"source_offset": round(base + float(start), DIGITS)}


def seconds_field(record: dict[str, Any], key: str) -> float:
    """A record's time field (``offset``, ``source_offset``) as seconds: 0 when absent or
    null; ItemError (that item's error, never the run's) when it is not a finite number >= 0.

    >>> seconds_field({"offset": 2.5}, "offset"), seconds_field({}, "offset")
    (2.5, 0.0)
    >>> seconds_field({"offset": "soon"}, "offset")
    Traceback (most recent call last):
    audioprep.errors.ItemError: 'offset' is 'soon', not a number of seconds
    """
    value = record.get(key)
    if value is None:
        return 0.0
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ItemError(f"{key!r} is {str(value)[:40]!r}, not a number of seconds")
    if not math.isfinite(value) or value < 0:
        raise ItemError(f"{key!r} is {value}, not a number of seconds >= 0")
    return float(value)
