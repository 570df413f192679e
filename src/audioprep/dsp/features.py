"""Training arrays from audio: log spectrograms, log-mel, MFCC and the 180-value tone vector.

Arrays in, arrays out. Signals are mono float arrays of shape ``(n,)`` in [-1, 1]; feature
matrices are ``(bins, frames)`` as in librosa (``bins`` = ``frame // 2 + 1`` for ``logspec``,
``n_mels`` for ``mel``, ``n_mfcc`` for ``mfcc``), with ``frames = 1 + n // hop`` (frames centred
on ``t * hop``, the signal padded with ``frame // 2`` zeros on each side: librosa's ``center=True``
with ``pad_mode="constant"``). Everything is computed frame by frame, so :class:`FrameFeatures`
streams a file of any length in blocks with bounded memory and gives the same numbers as one
call on the whole signal.

Differences from librosa's defaults, all so that a frame's value never depends on the rest of
the file: no ``top_db`` clipping (it is relative to the file's maximum), and chroma with
``tuning=0`` (librosa estimates the tuning over the whole file).

>>> import numpy as np
>>> sr = 22050
>>> y = np.sin(2 * np.pi * 440 * np.arange(int(0.74 * sr)) / sr).astype(np.float32)
>>> spec = logspec(y, frame=512, hop=256)
>>> spec.shape, spec.dtype
((257, 64), dtype('float32'))
>>> norm, lo, hi = minmax_normalise(spec)
>>> bool(norm.min() == 0.0 and norm.max() == 1.0)
True
>>> bool(np.allclose(minmax_denormalise(norm, lo=lo, hi=hi), spec, atol=1e-4))
True
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

import numpy as np

KINDS = ("logspec", "mel", "mfcc", "tone")
#: Floor of the magnitude before ``20 log10`` (librosa's ``amplitude_to_db`` default).
AMIN_AMPLITUDE = 1e-5
#: Floor of the power before ``10 log10`` (librosa's ``power_to_db`` default).
AMIN_POWER = 1e-10
#: The tone vector's STFT (librosa's defaults, as in the workflow it comes from).
TONE_FRAME = 2048
TONE_HOP = 512
TONE_MFCC = 40
TONE_MELS = 128
TONE_SIZE = TONE_MFCC + 12 + TONE_MELS  # 180


def frame_count(n_samples: int, *, hop: int) -> int:
    """Frames of a centred STFT of ``n_samples`` samples: ``1 + n_samples // hop``.

    >>> frame_count(16317, hop=256)
    64
    """
    if n_samples < 0 or hop <= 0:
        raise ValueError("n_samples must be >= 0 and hop > 0")
    return 1 + n_samples // hop


def fit_length(
    y: np.ndarray, *, pad_to: int | None = None, crop_to: int | None = None
) -> tuple[np.ndarray, int, int]:
    """Pad ``y`` with zeros at the end to ``pad_to`` samples and/or crop it to ``crop_to``.

    Returns ``(y2, padded, cropped)``: the fitted signal (time on the last axis, ``(..., m)``)
    and how many samples were added and removed. Both given and equal: a fixed length.

    >>> y2, padded, cropped = fit_length(np.ones(5), pad_to=8)
    >>> y2.tolist(), padded, cropped
    ([1.0, 1.0, 1.0, 1.0, 1.0, 0.0, 0.0, 0.0], 3, 0)
    >>> fit_length(np.arange(10), crop_to=4)[0].tolist()
    [0, 1, 2, 3]
    """
    n = y.shape[-1]
    target = fitted_length(n, pad_to=pad_to, crop_to=crop_to)
    if target < n:
        return y[..., :target], 0, n - target
    if target > n:
        width = [(0, 0)] * (y.ndim - 1) + [(0, target - n)]
        return np.pad(y, width), target - n, 0
    return y, 0, 0


def fitted_length(n: int, *, pad_to: int | None = None, crop_to: int | None = None) -> int:
    """The length :func:`fit_length` gives a signal of ``n`` samples.

    >>> fitted_length(100, pad_to=50, crop_to=80), fitted_length(10, pad_to=50, crop_to=80)
    (80, 50)
    """
    if pad_to is not None and crop_to is not None and pad_to > crop_to:
        raise ValueError("pad_to must not exceed crop_to")
    if pad_to is not None and pad_to < 0 or crop_to is not None and crop_to < 0:
        raise ValueError("pad_to and crop_to must be >= 0")
    target = n
    if crop_to is not None:
        target = min(target, crop_to)
    if pad_to is not None:
        target = max(target, pad_to)
    return target


def minmax_normalise(x: np.ndarray) -> tuple[np.ndarray, float, float]:
    """Scale ``x`` to [0, 1]; returns ``(scaled, lo, hi)`` with ``lo``/``hi`` the constants that
    :func:`minmax_denormalise` needs. A constant array becomes zeros.

    >>> minmax_normalise(np.array([2.0, 4.0, 3.0]))
    (array([0. , 1. , 0.5]), 2.0, 4.0)
    """
    lo, hi = float(np.min(x)), float(np.max(x))
    return minmax_apply(x, lo=lo, hi=hi), lo, hi


def minmax_apply(x: np.ndarray, *, lo: float, hi: float) -> np.ndarray:
    """``(x - lo) / (hi - lo)`` in ``x``'s dtype (zeros when ``hi == lo``), clipped to [0, 1]."""
    if hi == lo:
        return np.zeros_like(x)
    out = (x - x.dtype.type(lo)) / x.dtype.type(hi - lo)
    return np.clip(out, 0, 1, out=out)


def minmax_denormalise(x: np.ndarray, *, lo: float, hi: float) -> np.ndarray:
    """The inverse of :func:`minmax_normalise`: ``x * (hi - lo) + lo`` (float64 ``(...)``).

    >>> minmax_denormalise(np.array([0.0, 1.0, 0.5]), lo=2.0, hi=4.0)
    array([2., 4., 3.])
    """
    return np.asarray(x, dtype=np.float64) * (hi - lo) + lo


def window(frame: int) -> np.ndarray:
    """The periodic Hann window of ``frame`` samples (librosa's and scipy's ``"hann"``)."""
    n = np.arange(frame)
    return (0.5 - 0.5 * np.cos(2 * np.pi * n / frame)).astype(np.float32)


def _magnitudes(padded: np.ndarray, *, frame: int, hop: int, count: int, win: np.ndarray):
    """``count`` magnitude frames ``(count, frame // 2 + 1)`` starting at ``padded[0]``."""
    frames = np.lib.stride_tricks.sliding_window_view(padded, frame)[::hop][:count]
    return np.abs(np.fft.rfft(frames * win, axis=-1)).astype(np.float32)


class StreamingSTFT:
    """The magnitude STFT of a signal fed in pieces, identical to one call on the whole.

    ``feed(chunk)`` returns the frames completed so far, ``finish()`` the rest; each as a
    ``(m, frame // 2 + 1)`` float32 array (time first: one row per frame).

    >>> y = np.random.default_rng(0).standard_normal(5000).astype(np.float32)
    >>> s = StreamingSTFT(frame=512, hop=256)
    >>> rows = np.concatenate([s.feed(y[:1234]), s.feed(y[1234:]), s.finish()])
    >>> bool(np.allclose(rows.T, stft_magnitude(y, frame=512, hop=256)))
    True
    """

    def __init__(self, *, frame: int, hop: int) -> None:
        if frame <= 0 or hop <= 0:
            raise ValueError("frame and hop must be > 0")
        self.frame, self.hop = frame, hop
        self.win = window(frame)
        self._buf = np.zeros(frame // 2, dtype=np.float32)
        self._fed = 0
        self._emitted = 0

    def _take(self) -> np.ndarray:
        count = (len(self._buf) - self.frame) // self.hop + 1 if len(self._buf) >= self.frame else 0
        if count <= 0:
            return np.zeros((0, self.frame // 2 + 1), dtype=np.float32)
        out = _magnitudes(self._buf, frame=self.frame, hop=self.hop, count=count, win=self.win)
        self._buf = self._buf[count * self.hop :]
        self._emitted += count
        return out

    def feed(self, chunk: np.ndarray) -> np.ndarray:
        """Add ``chunk`` (``(m,)`` samples); return the frames it completed."""
        self._fed += len(chunk)
        self._buf = np.concatenate([self._buf, np.asarray(chunk, dtype=np.float32)])
        return self._take()

    def finish(self) -> np.ndarray:
        """Pad the end with ``frame // 2`` zeros; return the last frames."""
        self._buf = np.concatenate([self._buf, np.zeros(self.frame // 2, dtype=np.float32)])
        out = self._take()
        # a signal shorter than a frame still has 1 + n // hop frames (librosa pads it)
        missing = frame_count(self._fed, hop=self.hop) - self._emitted
        if missing > 0:
            need = (missing - 1) * self.hop + self.frame
            buf = np.concatenate([self._buf, np.zeros(max(0, need - len(self._buf)), np.float32)])
            extra = _magnitudes(buf, frame=self.frame, hop=self.hop, count=missing, win=self.win)
            out = np.concatenate([out, extra])
            self._emitted += missing
        return out


def stft_magnitude(y: np.ndarray, *, frame: int, hop: int) -> np.ndarray:
    """``|STFT|`` of mono ``y`` ``(n,)``: ``(frame // 2 + 1, 1 + n // hop)`` float32, equal to
    ``np.abs(librosa.stft(y, n_fft=frame, hop_length=hop))``."""
    s = StreamingSTFT(frame=frame, hop=hop)
    return np.concatenate([s.feed(y), s.finish()]).T


@functools.lru_cache(maxsize=16)
def mel_filters(*, sr: int, frame: int, n_mels: int) -> np.ndarray:
    """librosa's Slaney mel filter bank, ``(n_mels, frame // 2 + 1)`` float32 (read-only,
    cached)."""
    import librosa

    fb = librosa.filters.mel(sr=sr, n_fft=frame, n_mels=n_mels).astype(np.float32)
    fb.flags.writeable = False
    return fb


@functools.lru_cache(maxsize=16)
def chroma_filters(*, sr: int, frame: int) -> np.ndarray:
    """librosa's chroma filter bank with ``tuning=0``, ``(12, frame // 2 + 1)`` float32
    (read-only, cached)."""
    import librosa

    fb = librosa.filters.chroma(sr=sr, n_fft=frame, tuning=0.0).astype(np.float32)
    fb.flags.writeable = False
    return fb


def _dct(x: np.ndarray, n: int) -> np.ndarray:
    from scipy.fft import dct

    return dct(x, type=2, norm="ortho", axis=-1)[..., :n].astype(np.float32)


@dataclass
class FrameFeatures:
    """Per-frame features of a streamed signal: ``kind`` is logspec, mel or mfcc.

    ``rows(magnitudes)`` maps STFT magnitude rows ``(m, frame // 2 + 1)`` to feature rows
    ``(m, bins)``; stack them and transpose for the ``(bins, frames)`` matrix.
    """

    kind: str
    sr: int
    frame: int
    n_mels: int = 128
    n_mfcc: int = 20
    _fb: np.ndarray | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        if self.kind not in ("logspec", "mel", "mfcc"):
            raise ValueError(f"kind must be logspec, mel or mfcc, not {self.kind!r}")
        if self.kind != "logspec":
            self._fb = mel_filters(sr=self.sr, frame=self.frame, n_mels=self.n_mels)

    @property
    def bins(self) -> int:
        return {"logspec": self.frame // 2 + 1, "mel": self.n_mels, "mfcc": self.n_mfcc}[self.kind]

    def rows(self, mags: np.ndarray) -> np.ndarray:
        if self.kind == "logspec":
            return (20.0 * np.log10(np.maximum(mags, AMIN_AMPLITUDE))).astype(np.float32)
        assert self._fb is not None
        logmel = 10.0 * np.log10(np.maximum((mags * mags) @ self._fb.T, AMIN_POWER))
        if self.kind == "mel":
            return logmel.astype(np.float32)
        return _dct(logmel, self.n_mfcc)


def _matrix(kind: str, y: np.ndarray, *, sr: int, frame: int, hop: int, **kw: int) -> np.ndarray:
    feats = FrameFeatures(kind, sr=sr, frame=frame, **kw)
    return feats.rows(stft_magnitude(np.asarray(y, np.float32), frame=frame, hop=hop).T).T


def logspec(y: np.ndarray, *, frame: int = 512, hop: int = 256) -> np.ndarray:
    """Log-magnitude spectrogram in dB: ``20 log10(max(|STFT|, 1e-5))``,
    ``(frame // 2 + 1, 1 + n // hop)`` float32 (``librosa.amplitude_to_db(|S|, top_db=None)``).
    """
    return _matrix("logspec", y, sr=1, frame=frame, hop=hop)


def melspec_db(
    y: np.ndarray, *, sr: int, frame: int = 512, hop: int = 256, n_mels: int = 128
) -> np.ndarray:
    """Log-mel power spectrogram in dB, ``(n_mels, 1 + n // hop)`` float32
    (``librosa.power_to_db(librosa.feature.melspectrogram(...), top_db=None)``)."""
    return _matrix("mel", y, sr=sr, frame=frame, hop=hop, n_mels=n_mels)


def mfcc(
    y: np.ndarray,
    *,
    sr: int,
    frame: int = 512,
    hop: int = 256,
    n_mels: int = 128,
    n_mfcc: int = 20,
) -> np.ndarray:
    """MFCC: the orthonormal DCT-II of :func:`melspec_db`, ``(n_mfcc, 1 + n // hop)`` float32."""
    return _matrix("mfcc", y, sr=sr, frame=frame, hop=hop, n_mels=n_mels, n_mfcc=n_mfcc)


class ToneAccumulator:
    """The tone vector of a streamed signal: feed STFT magnitude rows, then :meth:`vector`.

    The vector (180 float32 values) is the mean over frames of 40 MFCC, 12 chroma (each frame
    scaled to a maximum of 1) and 128 mel band powers, at ``frame`` 2048 / ``hop`` 512.
    """

    def __init__(self, *, sr: int) -> None:
        self.sr = sr
        self._mel = mel_filters(sr=sr, frame=TONE_FRAME, n_mels=TONE_MELS)
        self._chroma = chroma_filters(sr=sr, frame=TONE_FRAME)
        self._sum = np.zeros(TONE_SIZE, dtype=np.float64)
        self.frames = 0

    def add(self, mags: np.ndarray) -> None:
        if not len(mags):
            return
        mel = (mags * mags) @ self._mel.T  # (m, 128) power
        mfccs = _dct(10.0 * np.log10(np.maximum(mel, AMIN_POWER)), TONE_MFCC)
        chroma = mags @ self._chroma.T  # librosa's chroma_stft(S=|S|) takes S as it is
        peak = chroma.max(axis=1, keepdims=True)
        tiny = np.finfo(np.float32).tiny
        chroma = chroma / np.where(peak < tiny, 1.0, peak)
        self._sum[:TONE_MFCC] += mfccs.sum(axis=0)
        self._sum[TONE_MFCC : TONE_MFCC + 12] += chroma.sum(axis=0)
        self._sum[TONE_MFCC + 12 :] += mel.sum(axis=0)
        self.frames += len(mags)

    def vector(self) -> np.ndarray:
        if not self.frames:
            raise ValueError("no frames: the signal is empty")
        return (self._sum / self.frames).astype(np.float32)


def tone_vector(y: np.ndarray, *, sr: int) -> np.ndarray:
    """The 180-value tone feature ``(180,)`` float32 of mono ``y``: means of 40 MFCC, 12 chroma
    and 128 mel powers (the radio workflow's librosa recipe, with ``tuning=0``, no ``top_db``).

    >>> y = np.random.default_rng(0).standard_normal(16000).astype(np.float32) * 0.1
    >>> tone_vector(y, sr=16000).shape
    (180,)
    """
    acc = ToneAccumulator(sr=sr)
    s = StreamingSTFT(frame=TONE_FRAME, hop=TONE_HOP)
    acc.add(s.feed(np.asarray(y, np.float32)))
    acc.add(s.finish())
    return acc.vector()


def tone_stream(blocks: Iterable[np.ndarray], *, sr: int) -> np.ndarray:
    """:func:`tone_vector` of a signal given as successive mono blocks (bounded memory)."""
    acc = ToneAccumulator(sr=sr)
    s = StreamingSTFT(frame=TONE_FRAME, hop=TONE_HOP)
    for block in blocks:
        acc.add(s.feed(block))
    acc.add(s.finish())
    return acc.vector()


def feature_rows(
    blocks: Iterable[np.ndarray],
    *,
    kind: str,
    sr: int,
    frame: int = 512,
    hop: int = 256,
    n_mels: int = 128,
    n_mfcc: int = 20,
) -> Iterator[np.ndarray]:
    """Feature rows ``(m, bins)`` float32 of a signal given as successive mono blocks: the
    transposed pieces of :func:`logspec` / :func:`melspec_db` / :func:`mfcc` (bounded memory)."""
    feats = FrameFeatures(kind, sr=sr, frame=frame, n_mels=n_mels, n_mfcc=n_mfcc)
    s = StreamingSTFT(frame=frame, hop=hop)
    for block in blocks:
        rows = s.feed(block)
        if len(rows):
            yield feats.rows(rows)
    rows = s.finish()
    if len(rows):
        yield feats.rows(rows)


def restore_audio(
    spec_db: np.ndarray,
    *,
    hop: int,
    frame: int | None = None,
    lo: float | None = None,
    hi: float | None = None,
    n_iter: int = 64,
    length: int | None = None,
    seed: int = 0,
) -> np.ndarray:
    """Audio ``(n,)`` float32 from a :func:`logspec` ``(frame // 2 + 1, frames)`` by
    Griffin-Lim (librosa), for listening checks. Give ``lo``/``hi`` when ``spec_db`` is
    min-max normalised (the recorded constants); ``length`` trims or pads to that many samples.

    >>> sr = 22050
    >>> y = np.sin(2 * np.pi * 440 * np.arange(sr // 2) / sr).astype(np.float32)
    >>> back = restore_audio(logspec(y, frame=512, hop=256), hop=256, length=len(y))
    >>> back.shape, back.dtype
    ((11025,), dtype('float32'))
    """
    import librosa

    spec = np.asarray(spec_db, dtype=np.float64)
    if lo is not None and hi is not None:
        spec = minmax_denormalise(spec, lo=lo, hi=hi)
    mags = np.power(10.0, spec / 20.0)
    n_fft = frame if frame is not None else 2 * (spec.shape[0] - 1)
    return librosa.griffinlim(
        mags.astype(np.float32),
        n_iter=n_iter,
        hop_length=hop,
        n_fft=n_fft,
        length=length,
        random_state=seed,
    ).astype(np.float32)


def mel_image(
    y: np.ndarray,
    *,
    sr: int,
    width: int = 256,
    height: int = 128,
    frame: int = 1024,
    hop: int = 256,
    top_db: float = 80.0,
) -> np.ndarray:
    """A fixed-size mel spectrogram picture: ``(height, width)`` uint8, low frequencies at the
    bottom, 255 at the item's loudest mel bin and 0 at ``top_db`` below it (``height`` mel bands,
    the time axis resampled linearly to ``width`` columns).

    >>> mel_image(np.zeros(8000, np.float32), sr=16000, width=64, height=32).shape
    (32, 64)
    """
    db = melspec_db(y, sr=sr, frame=frame, hop=hop, n_mels=height)
    return db_image(db, width=width, top_db=top_db)


def db_image(db: np.ndarray, *, width: int = 256, top_db: float = 80.0) -> np.ndarray:
    """A dB matrix ``(bins, frames)`` as a picture ``(bins, width)`` uint8: 255 at its maximum,
    0 at ``top_db`` below, the lowest bin at the bottom, frames resampled linearly to ``width``.

    >>> db_image(np.array([[0.0, -80.0], [-40.0, -40.0]]), width=3).tolist()
    [[128, 128, 128], [255, 128, 0]]
    """
    top = float(db.max())
    scaled = np.clip((db - (top - top_db)) / top_db, 0.0, 1.0)
    frames = scaled.shape[1]
    src = np.linspace(0, frames - 1, width) if frames > 1 else np.zeros(width)
    i0 = np.floor(src).astype(int)
    i1 = np.minimum(i0 + 1, frames - 1)
    w = (src - i0)[None, :]
    cols = scaled[:, i0] * (1 - w) + scaled[:, i1] * w
    return np.round(cols[::-1] * 255).astype(np.uint8)
