"""Cutting a fixed head and tail off a signal, sample-accurately."""

from __future__ import annotations

import numpy as np


def trim_bounds(
    n_samples: int, *, sr: int, head: float = 0.0, tail: float = 0.0
) -> tuple[int, int]:
    """Return ``(start, stop)`` sample indices that drop ``head`` and ``tail`` seconds.

    Seconds are rounded to the nearest sample. When head + tail covers the whole signal the
    result is empty (``start == stop``), never negative.

    >>> trim_bounds(16000 * 10, sr=16000, head=5, tail=1)
    (80000, 144000)
    >>> trim_bounds(100, sr=10, head=6, tail=6)
    (60, 60)
    """
    if n_samples < 0 or sr <= 0:
        raise ValueError("n_samples must be >= 0 and sr > 0")
    if head < 0 or tail < 0:
        raise ValueError("head and tail must be >= 0 seconds")
    start = min(int(round(head * sr)), n_samples)
    stop = max(n_samples - int(round(tail * sr)), start)
    return start, stop


def trim(y: np.ndarray, *, sr: int, head: float = 0.0, tail: float = 0.0) -> np.ndarray:
    """Drop ``head`` seconds from the start and ``tail`` from the end of ``y``.

    ``y`` has time on its last axis, shape ``(..., n)`` as in librosa (mono ``(n,)``, multi-channel
    ``(channels, n)``). Returns a view of shape ``(..., m)`` with ``m = stop - start`` from
    :func:`trim_bounds`.

    >>> trim(np.arange(10), sr=2, head=1, tail=1.5)
    array([2, 3, 4, 5, 6])
    """
    start, stop = trim_bounds(y.shape[-1], sr=sr, head=head, tail=tail)
    return y[..., start:stop]
