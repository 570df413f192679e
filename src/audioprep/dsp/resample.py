"""Polyphase resampling streamed block by block, equal to one whole-array ``resample_poly``.

:class:`StreamResampler` cuts the input into chunks whose length is a multiple of the
decimation factor (so every chunk starts on the output sample grid), resamples each chunk with a
few dozen samples of real context on either side, and keeps only the chunk's own output. The
context is longer than the polyphase filter's half length, so an interior output sample sees
exactly the input the whole-array call sees; at the very start and end both zero-pad. The
result equals ``scipy.signal.resample_poly(x, up, down, axis=-1)`` to float rounding.
"""

from __future__ import annotations

import math

import numpy as np
from scipy import signal

#: Input frames resampled per call (rounded up to a multiple of ``down``).
CHUNK_FRAMES = 1 << 16


def ratio(sr_in: int, sr_out: int) -> tuple[int, int]:
    """``(up, down)`` in lowest terms.

    >>> ratio(22050, 16000)
    (320, 441)
    """
    g = math.gcd(int(sr_in), int(sr_out))
    return int(sr_out) // g, int(sr_in) // g


class StreamResampler:
    """Resample blocks of shape ``(channels, m)`` from ``sr_in`` to ``sr_out``.

    ``feed`` returns the output that is final so far (shape ``(channels, k)``, ``k`` may be 0);
    ``flush`` returns the rest. Concatenated, they equal ``resample_poly`` on the whole signal.

    >>> x = np.random.default_rng(0).standard_normal((1, 50000))
    >>> r = StreamResampler(sr_in=22050, sr_out=16000)
    >>> y = np.concatenate([r.feed(x[:, :7000]), r.feed(x[:, 7000:]), r.flush()], axis=1)
    >>> bool(np.allclose(y, signal.resample_poly(x, 320, 441, axis=-1), atol=1e-9))
    True
    """

    def __init__(self, *, sr_in: int, sr_out: int, chunk_frames: int = CHUNK_FRAMES) -> None:
        self.up, self.down = ratio(sr_in, sr_out)
        half = 10 * max(self.up, self.down) / self.up  # resample_poly's filter, in input frames
        self.context = self.down * math.ceil((half + 8) / self.down)
        self.chunk = self.down * max(1, math.ceil(chunk_frames / self.down))
        self._buf: np.ndarray | None = None
        self._left = 0  # frames of left context at the start of _buf

    def _resample(self, x: np.ndarray) -> np.ndarray:
        if self.up == self.down == 1:
            return x
        return signal.resample_poly(x, self.up, self.down, axis=-1)

    def feed(self, block: np.ndarray) -> np.ndarray:
        block = np.asarray(block, dtype=np.float64)
        if block.ndim != 2:
            raise ValueError("blocks have shape (channels, m)")
        self._buf = block if self._buf is None else np.concatenate([self._buf, block], axis=1)
        outs = []
        while self._buf.shape[1] - self._left >= self.chunk + self.context:
            seg = self._buf[:, : self._left + self.chunk + self.context]
            y = self._resample(seg)
            a = self._left * self.up // self.down
            outs.append(y[:, a : a + self.chunk * self.up // self.down])
            self._buf = self._buf[:, self._left + self.chunk - self.context :]
            self._left = self.context
        if not outs:
            return np.zeros((block.shape[0], 0))
        return np.concatenate(outs, axis=1)

    def flush(self) -> np.ndarray:
        if self._buf is None:
            return np.zeros((1, 0))
        y = self._resample(self._buf)
        out = y[:, self._left * self.up // self.down :]
        self._buf, self._left = None, 0
        return out
