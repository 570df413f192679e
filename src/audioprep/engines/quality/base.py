"""The quality family: a scorer rates audio (its result: :data:`Scores`, metric -> value).

Every scorer is an :class:`audioprep.engines.base.Engine` with ``family = "quality"`` and the
:class:`Scorer` protocol: it scores mono float32 audio at ``sample_rate``, whole or streamed in
blocks (``stream().feed(block)`` ... ``result()``) so that memory stays bounded.

>>> from audioprep.engines.base import names
>>> names("quality")
['dnsmos']
"""

from __future__ import annotations

from typing import Any, Protocol, runtime_checkable

from audioprep.engines.base import Engine

#: Metric name -> value (``{"sig": 3.1, "bak": 3.9, "ovrl": 2.8, "p808": 3.4, "windows": 2}``).
Scores = dict[str, Any]


class ScoreStream(Protocol):
    """Audio fed in blocks ``(m,)``; the scores at the end."""

    def feed(self, block: Any) -> None: ...

    def result(self) -> Scores: ...


@runtime_checkable
class Scorer(Protocol):
    """Scores mono float32 audio ``(n,)`` at ``sample_rate``."""

    sample_rate: int

    def stream(self) -> ScoreStream: ...

    def score(self, audio: Any) -> Scores: ...


class ScorerEngine(Engine):
    """Base of scorers: ``score`` feeds the whole clip to a stream."""

    family = "quality"
    sample_rate: int = 16000

    def stream(self) -> ScoreStream:
        raise NotImplementedError

    def score(self, audio: Any) -> Scores:
        s = self.stream()
        s.feed(audio)
        return s.result()
