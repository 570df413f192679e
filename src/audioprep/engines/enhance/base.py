"""The enhance family: an enhancer cleans audio (speech enhancement, denoising); its result is
audio of the input's shape.

Every enhancer is an :class:`audioprep.engines.base.Engine` with ``family = "enhance"`` and
the :class:`Enhancer` protocol: ``enhance(audio, sample_rate)`` takes ``(frames, channels)``
float32 and returns the same shape. An enhancer with a recurrent state or a look-ahead also
offers :meth:`Enhancer.stream`, so that items of any length pass in bounded memory: blocks in,
blocks out, and ``flush()`` returns the rest; the concatenated output equals ``enhance`` of
the whole.

>>> import numpy as np
>>> class Gain(EnhancerEngine):
...     def enhance(self, audio, sample_rate):
...         return audio * 0.5
>>> s = Gain().stream(16000)
>>> out = np.concatenate([s.feed(np.ones((3, 1), np.float32)), s.flush()])
>>> out.shape, float(out[0, 0])
((3, 1), 0.5)
"""

from __future__ import annotations

from typing import Any, ClassVar, Protocol, runtime_checkable

from audioprep.engines.base import Engine


class EnhanceStream(Protocol):
    """Blocks ``(m, channels)`` float32 in, enhanced blocks out (possibly delayed)."""

    def feed(self, block: Any) -> Any: ...

    def flush(self) -> Any: ...


@runtime_checkable
class Enhancer(Protocol):
    """Enhances ``(frames, channels)`` float32 audio at ``sample_rate``; same shape out."""

    def enhance(self, audio: Any, sample_rate: int) -> Any: ...

    def stream(self, sample_rate: int, channels: int = 1) -> EnhanceStream: ...


class _BlockStream:
    """The stream of a stateless enhancer: each block enhanced alone."""

    def __init__(self, engine: EnhancerEngine, sample_rate: int, channels: int) -> None:
        self.engine, self.sample_rate, self.channels = engine, sample_rate, channels

    def feed(self, block: Any) -> Any:
        return self.engine.enhance(block, self.sample_rate)

    def flush(self) -> Any:
        import numpy as np

        return np.zeros((0, self.channels), np.float32)


class EnhancerEngine(Engine):
    """Base of enhancers. ``sample_rates``: the rates it runs at (the stage resamples to the
    first one); empty: any. ``stream`` defaults to enhancing each block alone, which is right
    only for a stateless enhancer: one with state or look-ahead overrides it."""

    family = "enhance"
    sample_rates: ClassVar[tuple[int, ...]] = ()

    def enhance(self, audio: Any, sample_rate: int) -> Any:
        raise NotImplementedError

    def stream(self, sample_rate: int, channels: int = 1) -> EnhanceStream:
        return _BlockStream(self, sample_rate, channels)
