"""Declared record fields: what a stage adds to a record, and how exports carry it.

A stage lists the fields it adds in ``Stage.fields``; exports (hf, csv), the report's generic
histograms and the docs' field tables read those declarations instead of hand lists::

    >>> loud = RecordField("loudness", "object", "What loudness did.", export="flatten",
    ...     members=(RecordField("gain_db", "float", "Gain applied (dB)."),))
    >>> columns([loud])
    ['loudness_gain_db']
    >>> row([loud], {"loudness": {"gain_db": -2.5, "other": 1}})
    {'loudness_gain_db': -2.5}
    >>> issues = RecordField("text_issues", "list", "Failed checks.", export="json")
    >>> row([issues], {"text_issues": ["loop: x"]})
    {'text_issues': '["loop: x"]'}

``export``: ``scalar`` (one column, the value as it is; anything not a scalar as JSON text),
``flatten`` (an object: one column ``NAME_MEMBER`` per declared member), ``json`` (one column
of compact JSON text) or ``none`` (left out of exports).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterable
from typing import Any, TypeGuard

from audioprep.manifests.records import Record, dumps

EXPORTS = ("scalar", "flatten", "json", "none")
TYPES = ("str", "int", "float", "bool", "object", "list")

__all__ = ["CORE_FIELDS", "EXPORTS", "TYPES", "RecordField", "columns", "numbers", "row"]


@dataclasses.dataclass(frozen=True)
class RecordField:
    """One field a stage adds to its records: its name, type, help and export shape.

    ``members``: the declared keys of an ``object`` field (each a RecordField);
    ``histogram``: the report draws the distribution of this number (or of each numeric
    member); ``unit``: shown beside it.
    """

    name: str
    type: str
    help: str
    export: str = "scalar"
    members: tuple[RecordField, ...] = ()
    unit: str = ""
    histogram: bool = False

    def __post_init__(self) -> None:
        if self.type not in TYPES:
            raise ValueError(f"{self.name}: type must be one of {', '.join(TYPES)}")
        if self.export not in EXPORTS:
            raise ValueError(f"{self.name}: export must be one of {', '.join(EXPORTS)}")
        if self.export == "flatten" and not self.members:
            raise ValueError(f"{self.name}: a flattened field declares its members")

    def columns(self) -> list[str]:
        """The export columns of this field."""
        if self.export == "none":
            return []
        if self.export == "flatten":
            return [f"{self.name}_{m.name}" for m in self.members]
        return [self.name]


#: Fields every manifest directory's records may carry, whichever stage wrote them (the
#: manifest format, docs/manifest-format.md); exported first, in this order.
CORE_FIELDS: tuple[RecordField, ...] = (
    RecordField("id", "str", "Unique id of the item in its directory."),
    RecordField("duration", "float", "Seconds of audio.", unit="s"),
    RecordField("sample_rate", "int", "Samples per second.", unit="Hz"),
    RecordField("channels", "int", "Audio channels."),
    RecordField("parent", "str", "The id of the item this one was cut from."),
    RecordField("offset", "float", "Where this clip starts in its parent (s).", unit="s"),
    RecordField("label", "str", "The segment label of a clip (speech, music, ...)."),
    RecordField("text", "str", "The transcript."),
)


def _scalar(value: Any) -> Any:
    if value is None or isinstance(value, str | int | bool):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else None  # never NaN in an export
    return dumps(value)


def columns(fields: Iterable[RecordField]) -> list[str]:
    """Every export column of ``fields``, in order."""
    return [c for f in fields for c in f.columns()]


def row(fields: Iterable[RecordField], record: Record) -> dict[str, Any]:
    """The export columns of ``fields`` for one record (absent values are None)."""
    out: dict[str, Any] = {}
    for f in fields:
        value = record.get(f.name)
        if f.export == "scalar":
            out[f.name] = _scalar(value)
        elif f.export == "json":
            out[f.name] = None if value is None else dumps(value)
        elif f.export == "flatten":
            members = value if isinstance(value, dict) else {}
            for m in f.members:
                out[f"{f.name}_{m.name}"] = _scalar(members.get(m.name))
    return out


def numbers(field: RecordField, record: Record) -> dict[str, float]:
    """The finite numbers of ``field`` in ``record`` that the report draws: ``{name: value}``
    (``quality.snr_db`` for a member)."""
    out: dict[str, float] = {}
    value = record.get(field.name)
    if field.members and isinstance(value, dict):
        for m in field.members:
            v = value.get(m.name)
            if m.histogram and _finite(v):
                out[f"{field.name}.{m.name}"] = float(v)
    elif field.histogram and _finite(value):
        out[field.name] = float(value)
    return out


def _finite(value: Any) -> TypeGuard[float]:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)
