"""Slicing arithmetic: which spans of a recording become clips. Seconds in, spans out.

No audio is read here except through the ``energy`` arrays callers pass in (frame RMS, one
value per ``hop`` seconds), so the rules can be tested on their own.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Span:
    """A labelled stretch ``[start, end)`` of a recording, in seconds."""

    start: float
    end: float
    label: str | None = None

    @property
    def duration(self) -> float:
        return self.end - self.start


def select_and_merge(
    segments: Iterable[Span], *, labels: Sequence[str] | None, merge_gap: float = 0.0
) -> list[Span]:
    """Keep segments whose label is in ``labels`` (all when None), sorted, and join segments of
    the same label separated by at most ``merge_gap`` seconds.

    >>> segs = [Span(0, 2, "speech"), Span(2, 2.3, "noEnergy"), Span(2.3, 5, "speech")]
    >>> select_and_merge(segs, labels=["speech"], merge_gap=0.5)
    [Span(start=0, end=5, label='speech')]
    """
    chosen = sorted(
        (s for s in segments if labels is None or s.label in labels and s.end > s.start),
        key=lambda s: (s.start, s.end),
    )
    merged: list[Span] = []
    for seg in chosen:
        if merged and merged[-1].label == seg.label and seg.start - merged[-1].end <= merge_gap:
            merged[-1] = Span(merged[-1].start, max(merged[-1].end, seg.end), seg.label)
        else:
            merged.append(seg)
    return merged


def quietest_point(energy: np.ndarray, *, hop: float, lo: float, hi: float) -> float:
    """The time in ``[lo, hi]`` where the frame energy is lowest (the latest such frame on ties).

    ``energy[i]`` describes the frame starting at ``i * hop`` seconds.
    """
    a = max(0, int(np.ceil(lo / hop)))
    b = min(len(energy), int(np.floor(hi / hop)) + 1)
    if b <= a:
        return hi
    window = energy[a:b]
    i = len(window) - 1 - int(np.argmin(window[::-1]))
    return (a + i) * hop


def split_long(
    span: Span,
    *,
    max_duration: float,
    min_duration: float = 0.0,
    energy: Callable[[float, float], tuple[np.ndarray, float, float]] | None = None,
    search: float = 3.0,
) -> list[Span]:
    """Split ``span`` into pieces no longer than ``max_duration``, each cut at the quietest
    point of the last ``search`` seconds before the limit, but never in the first half of the
    piece nor before ``min_duration``. ``energy(t0, t1)`` returns ``(frames, hop, first_time)``
    for that stretch; without it, pieces are cut at the limit itself.

    Pieces tile the span exactly: the first starts at ``span.start``, each starts where the
    previous ended, the last ends at ``span.end``.
    """
    if max_duration <= 0:
        raise ValueError("max_duration must be positive")
    pieces: list[Span] = []
    start = span.start
    while span.end - start > max_duration:
        limit = start + max_duration
        lo = max(start + min_duration, limit - search, start + max_duration / 2)
        cut = limit
        if energy is not None and lo < limit:
            frames, hop, t0 = energy(lo, limit)
            if len(frames):
                cut = t0 + quietest_point(frames, hop=hop, lo=0.0, hi=limit - t0)
                cut = min(max(cut, lo), limit)
        pieces.append(Span(start, cut, span.label))
        start = cut
    pieces.append(Span(start, span.end, span.label))
    return pieces


def pad_span(span: Span, *, pad: float, total: float) -> Span:
    """Widen ``span`` by ``pad`` seconds on each side, never past ``0`` or ``total``.

    >>> pad_span(Span(0.1, 9.9, "x"), pad=0.25, total=10.0)
    Span(start=0.0, end=10.0, label='x')
    """
    return Span(max(0.0, span.start - pad), min(total, span.end + pad), span.label)


def plan_chunks(total: float, *, chunk: float, drop_last: bool) -> tuple[list[Span], Span | None]:
    """Fixed-length chunks tiling ``[0, total)``; returns ``(chunks, dropped_last_or_None)``.

    >>> chunks, dropped = plan_chunks(65, chunk=30, drop_last=True)
    >>> [(c.start, c.end) for c in chunks], (dropped.start, dropped.end)
    ([(0.0, 30.0), (30.0, 60.0)], (60.0, 65.0))
    """
    if chunk <= 0:
        raise ValueError("chunk must be positive")
    spans: list[Span] = []
    start = 0.0
    index = 0
    while start < total:
        end = float(min(total, (index + 1) * chunk))
        spans.append(Span(start, end))
        index += 1
        start = float(index * chunk)
    if drop_last and spans and spans[-1].duration < chunk - 1e-9:
        return spans[:-1], spans[-1]
    return spans, None


def to_samples(span: Span, *, sr: int, n: int) -> tuple[int, int]:
    """Sample bounds ``(a, b)`` of a span, rounded to the nearest sample and kept in ``[0, n]``."""
    a = min(max(0, round(span.start * sr)), n)
    b = min(max(a, round(span.end * sr)), n)
    return a, b


def random_excerpts(
    n_samples: int, *, count: int, length: int, seed: int, key: str = "", overlap_ok: bool = False
) -> list[tuple[int, int]]:
    """``count`` random excerpts of ``length`` samples inside ``[0, n_samples)``, as sorted
    ``(start, end)`` sample bounds, reproducible from ``seed`` and ``key`` (an item id: each
    item gets its own draw whatever the order items are processed in).

    Without ``overlap_ok`` the excerpts never overlap, and the placement is uniform over
    the non-overlapping ones (the free space is split at ``count`` sorted uniform points); when only
    ``k < count`` fit, ``k`` are returned. With ``overlap_ok`` each start is uniform on its
    own. A signal shorter than ``length`` gives no excerpt.

    >>> random_excerpts(100, count=3, length=20, seed=1, key="a")
    [(3, 23), (47, 67), (72, 92)]
    >>> random_excerpts(100, count=3, length=20, seed=1, key="a") == _
    True
    >>> len(random_excerpts(50, count=3, length=20, seed=1))
    2
    """
    import zlib

    if length <= 0 or count < 0 or n_samples < 0:
        raise ValueError("length must be > 0, count and n_samples >= 0")
    if n_samples < length or count == 0:
        return []
    rng = np.random.default_rng([seed & 0xFFFFFFFF, zlib.crc32(key.encode("utf-8"))])
    if overlap_ok:
        starts = np.sort(rng.integers(0, n_samples - length, size=count, endpoint=True))
        return [(int(s), int(s) + length) for s in starts]
    count = min(count, n_samples // length)
    slack = n_samples - count * length
    gaps = np.sort(rng.integers(0, slack, size=count, endpoint=True))
    return [(int(g) + i * length, int(g) + (i + 1) * length) for i, g in enumerate(gaps)]
