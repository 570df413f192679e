"""Processing a long signal in overlapping windows, joined by linear cross-fades."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator

import numpy as np


def crossfade_windows(
    blocks: Iterable[np.ndarray],
    fn: Callable[[np.ndarray], np.ndarray],
    *,
    window: int,
    overlap: int,
) -> Iterator[np.ndarray]:
    """Apply ``fn`` to ``window``-frame windows that overlap by ``overlap`` frames; yield output.

    ``blocks`` are arrays of shape ``(m, channels)`` (time first, as soundfile reads them) of
    any sizes; ``fn`` maps a window ``(w, channels)`` to an array of the same shape. Where two
    windows overlap the output fades linearly from the first to the second. The output has
    exactly as many frames as the input; memory holds about two windows.

    >>> x = np.arange(10.0)[:, None]
    >>> y = np.concatenate(list(crossfade_windows([x], lambda w: w, window=4, overlap=2)))
    >>> np.allclose(y, x)
    True
    """
    if not 0 <= overlap < window:
        raise ValueError("need 0 <= overlap < window")
    buf: np.ndarray | None = None
    tail: np.ndarray | None = None  # output of the previous window over the overlap
    ramp = np.linspace(0.0, 1.0, overlap + 2, dtype=np.float64)[1:-1, None]

    def emit(y: np.ndarray, last: bool) -> np.ndarray:
        nonlocal tail
        y = y.astype(np.float64)
        if tail is not None and overlap:
            k = min(overlap, len(y))
            y[:k] = tail[:k] * (1 - ramp[:k]) + y[:k] * ramp[:k]
        if last:
            tail = None
            return y
        tail = y[window - overlap :].copy()
        return y[: window - overlap]

    for block in blocks:
        buf = block if buf is None else np.concatenate([buf, block])
        while len(buf) >= window + 1:  # keep at least one frame for the final window
            yield emit(fn(buf[:window]), last=False)
            buf = buf[window - overlap :]
    if buf is not None and len(buf):
        yield emit(fn(buf), last=True)
