"""The segment family: a segmenter labels an item's audio; its result is a list of Segment.

Every segmenter is an :class:`audioprep.engines.base.Engine` with ``family = "segment"`` and
the :class:`Segmenter` protocol; the segment stage picks one by name from the registry
(``engines.base.load("segment", name, settings)``). Settings are the shared
:class:`~audioprep.engines.base.Settings`; the options a segmenter may read are ``vad_engine``,
``detect_gender`` and ``batch_size``.

>>> from audioprep.engines.base import names
>>> names("segment")
['ina', 'silero']
>>> s: Segment = ("speech", 0.0, 1.5)
"""

from __future__ import annotations

from pathlib import Path
from typing import Protocol, runtime_checkable

from audioprep.engines.base import Engine

#: A labelled span of an item: ``(label, start_s, end_s)``.
Segment = tuple[str, float, float]


@runtime_checkable
class Segmenter(Protocol):
    """Labels an item's audio: segments covering it, in order."""

    def segment(self, path: Path, *, window_s: float = 300.0) -> list[Segment]:
        """Segments of the audio at ``path``, processed ``window_s`` seconds at a time."""
        ...

    def segment_many(self, paths: list[Path], *, window_s: float = 300.0) -> list[list[Segment]]:
        """:meth:`segment` of several items (a model's batch); equal to one at a time."""
        ...


class SegmenterEngine(Engine):
    """Base of segmenters: ``segment_many`` defaults to one item after the other."""

    family = "segment"

    def segment(self, path: Path, *, window_s: float = 300.0) -> list[Segment]:
        raise NotImplementedError

    def segment_many(self, paths: list[Path], *, window_s: float = 300.0) -> list[list[Segment]]:
        return [self.segment(p, window_s=window_s) for p in paths]
