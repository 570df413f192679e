"""Landmark audio fingerprints: pairs of spectral peaks hashed (Shazam, audfprint), an
inverted index of the hashes, offset voting, and a frame-by-frame check of an alignment.

The method is Wang's landmark hashing (Shazam, 2003) as audfprint implements it: the
prominent local maxima of a log spectrogram are paired with a few later peaks nearby in time
and frequency; each pair ``(f1, f2 - f1, t2 - t1)`` is a 20-bit hash stored with the anchor's
time ``t1``. Two recordings of the same audio share many hashes *at one constant time
difference*; different audio shares few, scattered over all differences. Peaks are where the
energy is, so the hashes survive re-encoding, resampling to 8 kHz and a gain change; only the
difference of times matters, so cuts at either end and containment in a longer file are found.

Everything runs at 8 kHz (an 8 kHz copy loses nothing), 512-point frames with a 128-sample
hop: one frame is :data:`FRAME_SECONDS` = 16 ms, and times are frame indices (frame ``i`` is
centred on sample ``i * HOP``).

Functions take NumPy arrays and keyword-only settings and return arrays; nothing here reads
files. :class:`HashIndex` is the inverted index (sorted arrays, built in ``O(n log n)`` of the
hashes, queried with binary search: no pair of items is ever compared unless they share hashes).

>>> import numpy as np
>>> rng = np.random.default_rng(0)
>>> x = rng.standard_normal(SR * 4).astype(np.float32) * np.repeat(rng.random(40), SR // 10)
>>> fp = analyse(x)
>>> fp["hashes"].dtype, fp["hashes"].shape == fp["times"].shape, fp["features"].shape[1]
(dtype('uint32'), True, 24)
>>> index = HashIndex.build([(fp["hashes"], fp["times"])])
>>> y = 0.5 * x[64 * HOP :]               # 64 frames (1.024 s) cut from the start, -6 dB
>>> q = analyse(y)
>>> votes = index.offsets(q["hashes"], q["times"])
>>> int(votes["item"][0]), int(votes["offset"][0])
(0, 64)
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np

SR = 8000
N_FFT = 512
HOP = 128
FRAME_SECONDS = HOP / SR  # 0.016 s
FPS = SR / HOP  # 62.5 frames per second

#: Peak picking: a peak is the largest value within +-PEAK_T frames and +-PEAK_F bins.
PEAK_T = 5
PEAK_F = 9
#: Peaks more than this many dB below the loudest frame of their block are ignored,
#: as are bins whose magnitude is below MIN_DB (digital silence, dither).
PEAK_RANGE_DB = 60.0
MIN_DB = -45.0
#: At most this many stronger peaks within +-0.5 s of a peak that is kept.
MAX_PEAKS_PER_S = 40
#: Pairing: each anchor is paired with up to FANOUT later peaks within DT_MIN..DT_MAX frames
#: and +-DF_MAX bins.
FANOUT = 5
DT_MIN, DT_MAX = 2, 63
DF_MAX = 31
HASH_BITS = 20
#: Band features for the frame check: log energies of N_BANDS log-spaced bands.
N_BANDS = 24
BAND_LO, BAND_HI = 120.0, 3900.0
POSTINGS_CHUNK = 1 << 14  # query hashes looked up at a time (HashIndex.postings)
BLOCK_FRAMES = 4096  # spectrogram computed this many frames (65 s) at a time


def n_frames(n_samples: int, *, hop: int = HOP) -> int:
    """Number of frames of a signal of ``n_samples`` samples.

    >>> n_frames(8000)
    63
    """
    return 1 + n_samples // hop


def _band_matrix(n_bins: int, sr: int, n_fft: int) -> np.ndarray:
    edges = np.geomspace(BAND_LO, BAND_HI, N_BANDS + 1)
    freqs = np.arange(n_bins) * sr / n_fft
    m = np.zeros((n_bins, N_BANDS), dtype=np.float32)
    for b in range(N_BANDS):
        sel = (freqs >= edges[b]) & (freqs < edges[b + 1])
        if not sel.any():  # a narrow low band: the nearest bin
            sel[np.argmin(np.abs(freqs - (edges[b] + edges[b + 1]) / 2))] = True
        m[sel, b] = 1.0 / sel.sum()
    return m


def power_spectrogram(
    x: np.ndarray, *, first: int = 0, last: int | None = None, n_fft: int = N_FFT, hop: int = HOP
) -> np.ndarray:
    """Power spectrogram of frames ``first..last-1`` of mono ``x`` (shape ``(n,)``), Hann window,
    frame ``i`` centred on sample ``i * hop`` (zero padding at both ends).

    Returns float32 of shape ``(last - first, n_fft // 2 + 1)``.

    >>> power_spectrogram(np.ones(1000, np.float32), first=2, last=5).shape
    (3, 257)
    """
    total = n_frames(len(x), hop=hop)
    last = total if last is None else min(last, total)
    first = max(0, min(first, last))
    half = n_fft // 2
    if last <= first:
        return np.zeros((0, half + 1), np.float32)
    lo = first * hop - half
    length = (last - 1 - first) * hop + n_fft
    seg = np.zeros(length, np.float32)
    a, b = max(lo, 0), min(lo + length, len(x))
    if b > a:
        seg[a - lo : b - lo] = x[a:b]
    frames = np.lib.stride_tricks.sliding_window_view(seg, n_fft)[::hop][: last - first]
    spec = np.fft.rfft(frames * np.hanning(n_fft).astype(np.float32), axis=1)
    return (spec.real**2 + spec.imag**2).astype(np.float32)


def find_peaks(
    s_db: np.ndarray, *, frame_offset: int = 0
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Local maxima of a dB spectrogram ``s_db`` (shape ``(frames, bins)``).

    Returns ``(times, bins, values)``: int32, int32, float32 arrays of shape ``(n,)`` sorted by
    time then bin; ``times`` are frame indices plus ``frame_offset``. A peak is the maximum of
    its +-PEAK_T x +-PEAK_F neighbourhood, at least MIN_DB and within PEAK_RANGE_DB of the
    block's loudest bin; bins below 150 Hz and the top bins are left out. The result does not
    depend on the gain of the input (except near MIN_DB).

    >>> s = np.full((20, 257), -100.0, np.float32); s[10, 40] = 0.0
    >>> find_peaks(s, frame_offset=100)
    (array([110], dtype=int32), array([40], dtype=int32), array([0.], dtype=float32))
    """
    from scipy.ndimage import maximum_filter

    if s_db.size == 0:
        empty = np.zeros(0, np.int32)
        return empty, empty.copy(), np.zeros(0, np.float32)
    local = maximum_filter(s_db, size=(2 * PEAK_T + 1, 2 * PEAK_F + 1), mode="nearest")
    floor = max(MIN_DB, float(s_db.max()) - PEAK_RANGE_DB)
    mask = (s_db == local) & (s_db >= floor)
    mask[:, :10] = False  # below ~150 Hz: hum, rumble
    mask[:, 255:] = False  # keeps f1 within 8 bits
    t, f = np.nonzero(mask)
    return (t + frame_offset).astype(np.int32), f.astype(np.int32), s_db[t, f].astype(np.float32)


def thin_peaks(
    times: np.ndarray, bins: np.ndarray, values: np.ndarray, *, per_second: int = MAX_PEAKS_PER_S
) -> tuple[np.ndarray, np.ndarray]:
    """Keep a peak when fewer than ``per_second`` stronger peaks lie within half a second of
    it either side (a sliding window: the choice does not change when the signal is cut).

    Arrays of shape ``(n,)``; returns ``(times, bins)`` of the kept peaks sorted by time, bin.

    >>> t, f, v = np.array([0, 1, 2]), np.array([5, 6, 7]), np.array([1.0, 3.0, 2.0])
    >>> thin_peaks(t, f, v, per_second=2)
    (array([1, 2], dtype=int32), array([6, 7], dtype=int32))
    """
    o = np.lexsort((bins, times))
    t, f, v = times[o], bins[o], values[o]
    n = len(t)
    half = int(FPS) // 2
    stronger = np.zeros(n, dtype=np.int32)
    k = 1
    while k < n:
        i = np.arange(n - k)
        j = i + k
        near = t[j] - t[i] <= half
        if not near.any():
            break
        i, j = i[near], j[near]
        stronger[i] += v[j] > v[i]
        stronger[j] += v[i] >= v[j]  # ties: the earlier peak counts as stronger
        k += 1
    keep = stronger < per_second
    return t[keep].astype(np.int32), f[keep].astype(np.int32)


def pair_peaks(
    times: np.ndarray, bins: np.ndarray, *, fanout: int = FANOUT
) -> tuple[np.ndarray, np.ndarray]:
    """Landmarks: each peak paired with up to ``fanout`` following peaks ``DT_MIN..DT_MAX``
    frames later and within +-DF_MAX bins; each pair hashed into 20 bits as
    ``f1 << 12 | (df + 32) << 6 | dt``.

    ``times``, ``bins``: shape ``(n,)``, sorted by time. Returns ``(hashes, anchor_times)``,
    uint32 and int32 of shape ``(m,)``, ``m <= fanout * n``.

    >>> h, t = pair_peaks(np.array([0, 5, 9]), np.array([40, 45, 38]))
    >>> [hex(v) for v in h], t.tolist()
    (['0x28789', '0x28945', '0x2d644'], [0, 0, 5])
    """
    n = len(times)
    hashes, anchors = [], []
    taken = np.zeros(n, dtype=np.int32)
    idx = np.arange(n)
    k = 1
    while k < n:
        i = idx[: n - k]
        j = i + k
        dt = times[j] - times[i]
        if dt.size == 0 or dt.min() > DT_MAX:
            break
        df = bins[j] - bins[i]
        ok = (dt >= DT_MIN) & (dt <= DT_MAX) & (np.abs(df) <= DF_MAX) & (taken[i] < fanout)
        sel = i[ok]
        taken[sel] += 1
        hashes.append(
            (bins[sel].astype(np.uint32) << 12)
            | ((df[ok] + 32).astype(np.uint32) << 6)
            | dt[ok].astype(np.uint32)
        )
        anchors.append(times[sel])
        k += 1
    if not hashes:
        return np.zeros(0, np.uint32), np.zeros(0, np.int32)
    h = np.concatenate(hashes)
    t = np.concatenate(anchors).astype(np.int32)
    o = np.lexsort((h, t))
    return h[o], t[o]


def hash_dt(hashes: np.ndarray) -> np.ndarray:
    """The frame distance from anchor to target encoded in each hash (shape kept).

    >>> hash_dt(np.array([0x28945], np.uint32)).tolist()
    [5]
    """
    return (hashes & 63).astype(np.int32)


def analyse(x: np.ndarray, *, sr: int = SR, fanout: int = FANOUT) -> dict[str, np.ndarray]:
    """Fingerprint mono ``x`` (shape ``(n,)``, float, sample rate ``sr`` = 8000).

    Returns ``hashes`` (uint32, ``(m,)``), ``times`` (int32 anchor frames, ``(m,)``),
    ``features`` (float16 ``(frames, N_BANDS)``: band log energies in dB) and ``energy``
    (float16 ``(frames,)``: frame energy in dB). The same as :func:`analyse_stream` over
    ``x`` in any blocks.
    """
    if sr != SR:
        raise ValueError(f"fingerprints are computed at {SR} Hz; resample first")
    return analyse_stream([np.asarray(x, np.float32)], fanout=fanout)


def analyse_stream(
    blocks: Any, *, fanout: int = FANOUT, features: bool = True
) -> dict[str, np.ndarray]:
    """:func:`analyse` of a signal given as successive mono 8 kHz blocks (shapes ``(k,)``):
    memory holds one spectrogram block of BLOCK_FRAMES frames and its samples, the peaks and
    the per-frame features, never the signal; the result does not depend on the block sizes.
    ``features=False`` leaves the band features out (``features`` then has 0 columns).

    >>> x = np.random.default_rng(0).standard_normal(3 * SR).astype(np.float32)
    >>> a, b = analyse(x), analyse_stream(np.array_split(x, 7))
    >>> all(np.array_equal(a[k], b[k]) for k in a)
    True
    """
    half = N_FFT // 2
    bands = _band_matrix(N_FFT // 2 + 1, SR, N_FFT)
    pt: list[np.ndarray] = []
    pf: list[np.ndarray] = []
    pv: list[np.ndarray] = []
    feats: list[np.ndarray] = []
    energy: list[np.ndarray] = []
    buf = np.zeros(0, np.float32)  # samples from absolute index ``start``
    start = 0
    n = 0  # samples seen
    f0 = 0  # first frame of the next spectrogram block

    def block(f0: int, f1: int, total: int) -> None:
        nonlocal buf, start
        c0, c1 = max(0, f0 - PEAK_T), min(total, f1 + PEAK_T)
        lo = c0 * HOP - half
        length = (c1 - 1 - c0) * HOP + N_FFT
        seg = np.zeros(length, np.float32)
        a, b = max(lo, start), min(lo + length, start + len(buf))
        if b > a:
            seg[a - lo : b - lo] = buf[a - start : b - start]
        frames = np.lib.stride_tricks.sliding_window_view(seg, N_FFT)[::HOP][: c1 - c0]
        spec = np.fft.rfft(frames * np.hanning(N_FFT).astype(np.float32), axis=1)
        p = (spec.real**2 + spec.imag**2).astype(np.float32)
        s_db = 10 * np.log10(p + 1e-10)
        t, f, v = find_peaks(s_db, frame_offset=c0)
        inside = (t >= f0) & (t < f1)
        pt.append(t[inside])
        pf.append(f[inside])
        pv.append(v[inside])
        core = p[f0 - c0 : f0 - c0 + (f1 - f0)]
        if features:
            feats.append((10 * np.log10(core @ bands + 1e-10)).astype(np.float16))
        energy.append((10 * np.log10(core.sum(axis=1) + 1e-10)).astype(np.float16))
        keep = max(0, (f1 - PEAK_T) * HOP - half)  # the next block's first sample
        if keep > start:
            buf = buf[keep - start :].copy()
            start = keep

    for piece in blocks:
        piece = np.asarray(piece, np.float32)
        buf = np.concatenate([buf, piece]) if len(buf) else piece
        n += len(piece)
        # a block can be made once the samples of its last context frame are in
        while (f0 + BLOCK_FRAMES + PEAK_T - 1) * HOP + half <= n:
            f1 = f0 + BLOCK_FRAMES
            block(f0, f1, f1 + PEAK_T)
            f0 = f1
    total = n_frames(n)
    while f0 < total:
        f1 = min(total, f0 + BLOCK_FRAMES)
        block(f0, f1, total)
        f0 = f1
    if pt:
        t, f = thin_peaks(np.concatenate(pt), np.concatenate(pf), np.concatenate(pv))
    else:
        t = f = np.zeros(0, np.int32)
    hashes, times = pair_peaks(t, f, fanout=fanout)
    return {
        "hashes": hashes,
        "times": times,
        "features": np.concatenate(feats)
        if feats
        else np.zeros((0, N_BANDS if features else 0), np.float16),
        "energy": np.concatenate(energy) if energy else np.zeros(0, np.float16),
    }


def frame_similarity(
    a: np.ndarray,
    b: np.ndarray,
    *,
    energy_a: np.ndarray,
    energy_b: np.ndarray,
    min_db: float = MIN_DB,
) -> np.ndarray:
    """Per-frame similarity of two aligned band-feature sequences (shape ``(n, N_BANDS)``):
    the correlation of their band log energies with each frame's mean removed, so a gain change
    does not matter. NaN where either frame is silent (energy below ``min_db``).

    Returns float32 of shape ``(n,)`` in [-1, 1].

    >>> a = np.random.default_rng(1).normal(size=(3, N_BANDS)).astype(np.float32)
    >>> e = np.zeros(3)
    >>> np.round(frame_similarity(a, a - 6.0, energy_a=e, energy_b=e), 3).tolist()
    [1.0, 1.0, 1.0]
    """
    a = a.astype(np.float32) - a.mean(axis=1, keepdims=True, dtype=np.float32)
    b = b.astype(np.float32) - b.mean(axis=1, keepdims=True, dtype=np.float32)
    num = (a * b).sum(axis=1)
    den = np.sqrt((a * a).sum(axis=1) * (b * b).sum(axis=1)) + 1e-6
    sim = (num / den).astype(np.float32)
    silent = (np.asarray(energy_a, np.float32) < min_db) | (
        np.asarray(energy_b, np.float32) < min_db
    )
    sim[silent] = np.nan
    return sim


def matched_spans(
    times: np.ndarray,
    ends: np.ndarray,
    *,
    max_gap: int,
    min_hashes: int,
    radius: int = 19,
    support: int = 2,
) -> list[tuple[int, int, int]]:
    """Group matched landmarks into spans: ``times`` (anchor frames) and ``ends`` (target
    frames), shape ``(n,)``. Matches with fewer than ``support`` others within +-``radius``
    frames are dropped (chance agreements); then consecutive anchors more than ``max_gap``
    frames apart start a new span. Returns ``[(first_frame, end_frame, n_hashes), ...]`` for
    the spans with at least ``min_hashes`` landmarks.

    >>> matched_spans(np.array([0, 3, 5, 90, 200, 201]), np.array([9, 8, 20, 99, 210, 230]),
    ...               max_gap=100, min_hashes=3)
    [(0, 20, 3)]
    """
    if len(times) == 0:
        return []
    o = np.argsort(times, kind="stable")
    t, e = times[o], ends[o]
    # an isolated match (fewer than `support` others within +-radius frames) is chance
    near = np.searchsorted(t, t + radius, side="right") - np.searchsorted(t, t - radius)
    keep = near - 1 >= support
    t, e = t[keep], e[keep]
    if len(t) == 0:
        return []
    cut = np.flatnonzero(np.diff(t) > max_gap) + 1
    spans = []
    for ts, es in zip(np.split(t, cut), np.split(e, cut), strict=True):
        if len(ts) >= min_hashes:
            spans.append((int(ts[0]), int(es.max()), int(len(ts))))
    return spans


@dataclasses.dataclass
class HashIndex:
    """Inverted index of landmark hashes: every ``(hash, item, time)`` sorted by hash.

    ``keys`` uint32, ``items`` int32, ``times`` int32, all shape ``(n,)``. Built in one sort;
    a query is a binary search per hash, so its cost grows with the matches found, not with
    the number of items. ``max_postings`` skips hashes held more often than that (silence,
    hum): they vote for everything and tell nothing.
    """

    keys: np.ndarray
    items: np.ndarray
    times: np.ndarray

    @classmethod
    def build(
        cls, fingerprints: list[tuple[np.ndarray, np.ndarray]], *, numbers: Any = None
    ) -> HashIndex:
        """Index ``[(hashes, times), ...]``; item ``k`` is the k-th pair, or ``numbers[k]``."""
        if not fingerprints:
            z = np.zeros(0, np.int32)
            return cls(np.zeros(0, np.uint32), z, z.copy())
        keys = np.concatenate([h for h, _ in fingerprints]).astype(np.uint32)
        times = np.concatenate([t for _, t in fingerprints]).astype(np.int32)
        ids = np.arange(len(fingerprints)) if numbers is None else np.asarray(numbers)
        items = np.repeat(ids.astype(np.int32), [len(h) for h, _ in fingerprints])
        order = np.argsort(keys, kind="stable")
        return cls(keys[order], items[order], times[order])

    def __len__(self) -> int:
        return len(self.keys)

    def postings(
        self,
        hashes: np.ndarray,
        times: np.ndarray,
        *,
        max_postings: int | None = None,
        where: Any = None,
        chunk: int = POSTINGS_CHUNK,
    ) -> dict[str, np.ndarray]:
        """Every index entry sharing a hash with the query (``hashes``, ``times``: shape ``(m,)``).

        Returns arrays of one shape ``(k,)``: ``item``, ``offset`` (indexed time minus query
        time, in frames), ``qtime`` (the query anchor frame) and ``qindex`` (position in the
        query). ``where``: a function of the ``item`` array giving the entries to keep (say,
        other items than the query's own), applied ``chunk`` query hashes at a time, so the
        entries left out are never all held at once: an item's matches with itself grow with
        the square of its length.

        >>> index = HashIndex.build([(np.array([7, 7, 9]), np.array([0, 5, 9]))] * 2)
        >>> p = index.postings(np.array([7, 9]), np.array([0, 9]), where=lambda it: it != 0)
        >>> p["item"].tolist(), p["offset"].tolist(), p["qindex"].tolist()
        ([1, 1, 1], [0, 5, 0], [0, 0, 1])
        """
        parts = []
        for first in range(0, max(1, len(hashes)), chunk):
            h, t = hashes[first : first + chunk], times[first : first + chunk]
            lo = np.searchsorted(self.keys, h, side="left")
            hi = np.searchsorted(self.keys, h, side="right")
            counts = hi - lo
            if max_postings is not None:
                counts = np.where(counts > max_postings, 0, counts)
            total = int(counts.sum())
            qidx = np.repeat(np.arange(len(h)), counts)
            starts = np.repeat(lo, counts)
            firsts = np.repeat(np.cumsum(counts) - counts, counts)
            pos = starts + (np.arange(total) - firsts)
            qt = np.asarray(t, np.int64)[qidx]
            part = {
                "item": self.items[pos],
                "offset": self.times[pos].astype(np.int64) - qt,
                "qtime": qt,
                "qindex": qidx + first,
            }
            if where is not None:
                keep = where(part["item"])
                part = {k: v[keep] for k, v in part.items()}
            parts.append(part)
        if len(parts) == 1:
            return parts[0]
        return {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}

    def offsets(
        self,
        hashes: np.ndarray,
        times: np.ndarray,
        *,
        min_count: int = 5,
        max_postings: int | None = None,
        exclude: int | None = None,
        tolerance: int = 1,
        peaks_per_item: int = 8,
    ) -> dict[str, np.ndarray]:
        """Vote: for every (item, time offset) the number of shared hashes within
        +-``tolerance`` frames; keep local maxima with at least ``min_count`` votes (up to
        ``peaks_per_item`` per item), strongest first. ``exclude``: an item to ignore (the query
        itself). Returns ``item``, ``offset`` (frames; indexed = query + offset), ``count``.
        """
        p = self.postings(hashes, times, max_postings=max_postings)
        item, off = p["item"], p["offset"]
        if exclude is not None:
            keep = item != exclude
            item, off = item[keep], off[keep]
        return vote(
            item, off, min_count=min_count, tolerance=tolerance, peaks_per_item=peaks_per_item
        )

    def save(self, path: Any, **extra: Any) -> None:
        """Write the index (and ``extra`` arrays) to an ``.npz`` file, atomically: into a
        temporary file beside it, renamed over ``path`` once complete (a kill while saving
        leaves the old file or none, never half of one)."""
        import contextlib
        import os

        path = os.fspath(path)
        tmp = f"{path}.{os.getpid()}.tmp"
        try:
            with open(tmp, "wb") as fh:
                np.savez(fh, keys=self.keys, items=self.items, times=self.times, **extra)
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, path)
        finally:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)

    @classmethod
    def load(cls, path: Any) -> tuple[HashIndex, dict[str, np.ndarray]]:
        """Read an index written by :meth:`save`; returns it and the extra arrays.

        Every member is checked before it is read (ValueError with one sentence otherwise):
        stored uncompressed (as :meth:`save` writes it, so no member can expand beyond the
        file's own size), 1-D, a plain dtype (no objects), and a shape that fits the bytes
        it holds; ``keys``, ``items`` and ``times`` integers of one length, keys sorted.
        """
        import zipfile

        try:
            shapes = _checked_members(path)
            for name in ("keys", "items", "times"):
                if name not in shapes:
                    raise ValueError(f"it has no {name!r} array")
                if shapes[name][1].kind not in "iu":
                    raise ValueError(f"its {name!r} array is not integers")
            if not shapes["keys"][0] == shapes["items"][0] == shapes["times"][0]:
                raise ValueError("its keys, items and times differ in length")
            with np.load(path, allow_pickle=False) as data:
                arrays = {k: data[k] for k in shapes}
        except (zipfile.BadZipFile, OSError, EOFError, KeyError) as exc:
            raise ValueError(f"it is not an index file ({exc})") from None
        keys = arrays.pop("keys")
        if len(keys) > 1 and not bool(np.all(keys[1:] >= keys[:-1])):
            raise ValueError("its keys are not sorted")
        index = cls(keys.astype(np.uint32), arrays.pop("items"), arrays.pop("times"))
        return index, arrays


def _checked_members(path: Any) -> dict[str, tuple[int, np.dtype]]:
    """``{name: (length, dtype)}`` of the arrays in an ``.npz`` written by ``np.savez``,
    read from their headers only; ValueError for anything else."""
    import zipfile

    from audioprep.dsp.npz import npy_header

    out: dict[str, tuple[int, np.dtype]] = {}
    with zipfile.ZipFile(path) as zf:
        for info in zf.infolist():
            name = info.filename
            if not name.endswith(".npy"):
                raise ValueError(f"it holds {name!r}, which is not an array")
            if info.compress_type != zipfile.ZIP_STORED:
                raise ValueError(f"its member {name} is compressed (an index is stored as is)")
            shape, dtype, start = npy_header(zf, info)
            if dtype.hasobject:
                raise ValueError(f"its member {name} holds Python objects")
            if len(shape) != 1:
                raise ValueError(f"its member {name} has shape {shape}, not one dimension")
            if start + shape[0] * dtype.itemsize != info.file_size:
                raise ValueError(
                    f"its member {name} claims {shape[0]} values but holds "
                    f"{max(0, info.file_size - start)} bytes"
                )
            out[name[: -len(".npy")]] = (shape[0], dtype)
    return out


def vote(
    item: np.ndarray,
    offset: np.ndarray,
    *,
    min_count: int,
    tolerance: int = 1,
    peaks_per_item: int = 8,
) -> dict[str, np.ndarray]:
    """Offset histogram of matches (``item``, ``offset``: shape ``(k,)``): counts per (item,
    offset) summed over +-``tolerance`` frames, local maxima with at least ``min_count``.

    >>> v = vote(np.array([3, 3, 3, 3, 2]), np.array([10, 10, 11, 50, 7]), min_count=2)
    >>> v["item"].tolist(), v["offset"].tolist(), v["count"].tolist()
    ([3], [10], [3])
    """
    empty = {
        "item": np.zeros(0, np.int64),
        "offset": np.zeros(0, np.int64),
        "count": np.zeros(0, np.int64),
    }
    if len(item) == 0:
        return empty
    bias = np.int64(1) << 40
    key = np.asarray(item, np.int64) * (bias << 1) + (np.asarray(offset, np.int64) + bias)
    uniq, counts = np.unique(key, return_counts=True)
    smooth = counts.astype(np.int64).copy()
    for d in range(1, tolerance + 1):
        for sign in (-1, 1):
            nb = np.searchsorted(uniq, uniq + sign * d)
            nb_c = np.minimum(nb, len(uniq) - 1)
            hit = uniq[nb_c] == uniq + sign * d
            smooth += np.where(hit, counts[nb_c], 0)
    cand = smooth >= min_count
    if not cand.any():
        return empty
    # local maxima: no neighbour within +-tolerance (same item) with a larger smoothed count
    # (ties: the one with the larger raw count, then the smaller offset, wins)
    is_max = cand.copy()
    for d in range(-2 * tolerance, 2 * tolerance + 1):
        if d == 0:
            continue
        nb = np.searchsorted(uniq, uniq + d)
        nb_c = np.minimum(nb, len(uniq) - 1)
        hit = uniq[nb_c] == uniq + d
        better = (smooth[nb_c] > smooth) | (
            (smooth[nb_c] == smooth)
            & ((counts[nb_c] > counts) | ((counts[nb_c] == counts) & (d < 0)))
        )
        is_max &= ~(hit & better)
    sel = np.flatnonzero(is_max)
    it = uniq[sel] // (bias << 1)
    off = uniq[sel] % (bias << 1) - bias
    c = smooth[sel]
    order = np.lexsort((off, -c, it))
    it, off, c = it[order], off[order], c[order]
    first = np.r_[0, np.flatnonzero(np.diff(it)) + 1]
    rank = np.arange(len(it)) - np.repeat(first, np.diff(np.r_[first, len(it)]))
    keep = rank < peaks_per_item
    it, off, c = it[keep], off[keep], c[keep]
    order = np.lexsort((off, it, -c))
    return {"item": it[order], "offset": off[order], "count": c[order]}
