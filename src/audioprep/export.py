"""Compatibility: the export code lives in :mod:`audioprep.exports` (one module per format)."""

from __future__ import annotations

from audioprep.exports import FORMATS, SKIPPED_FILE, export, format_module
from audioprep.exports._base import ASMR_FIELDS, RECORD_FIELDS, asmr_row

__all__ = [
    "ASMR_FIELDS",
    "FORMATS",
    "RECORD_FIELDS",
    "SKIPPED_FILE",
    "asmr_row",
    "export",
    "format_module",
]
