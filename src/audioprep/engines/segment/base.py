"""The engine contracts: what a segmenter is, and the one Segment type every engine returns.

An engine wraps a model: it is built once per worker (``from_settings``) and then labels
items. The segment stage picks one by name from :data:`SEGMENTERS` and imports it only then,
so the engines' numpy/TensorFlow/torch imports stay out of the CLI.

>>> sorted(SEGMENTERS)
['ina', 'silero']
>>> s: Segment = ("speech", 0.0, 1.5)
"""

from __future__ import annotations

import dataclasses
import importlib
from pathlib import Path
from typing import Protocol, runtime_checkable

#: A labelled span of an item: ``(label, start_s, end_s)``.
Segment = tuple[str, float, float]


@dataclasses.dataclass(frozen=True)
class SegmenterSettings:
    """Everything a segmenter may use; each engine takes what applies to it."""

    model_dir: Path | None = None
    vad_engine: str = "smn"
    detect_gender: bool = False
    batch_size: int = 256
    device: str = "cpu"
    threads: int = 1


@runtime_checkable
class Segmenter(Protocol):
    """Labels an item's audio: segments covering it, in order."""

    def segment(self, path: Path, *, window_s: float = 300.0) -> list[Segment]:
        """Segments of the audio at ``path``, processed ``window_s`` seconds at a time."""
        ...


#: Segmenter name -> ``module:Class`` (the class has ``from_settings(SegmenterSettings)``).
SEGMENTERS = {
    "ina": "audioprep.engines.segment.ina:InaEngine",
    "silero": "audioprep.engines.segment.silero:SileroEngine",
}


def load_segmenter(name: str, settings: SegmenterSettings) -> Segmenter:
    """Import and build segmenter ``name`` (a key of :data:`SEGMENTERS`)."""
    module, _, cls_name = SEGMENTERS[name].partition(":")
    cls = getattr(importlib.import_module(module), cls_name)
    return cls.from_settings(settings)
