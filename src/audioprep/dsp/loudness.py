"""Integrated loudness (ITU-R BS.1770-4, EBU R128) and true peak, whole-array and streamed.

Signals have time on the last axis: mono ``(n,)`` or ``(channels, n)``; samples are floats with
full scale at 1.0.

Loudness. The K-weighting filter (the high shelf and high pass of BS.1770, designed for any
sample rate with the same formulas as pyloudnorm) runs block by block with its state carried.
Mean squares are summed per 100 ms step (weighted 1.0 for the first three channels, 1.41 for
surrounds); a 400 ms gating block is four consecutive steps, so the blocks overlap by 75 % as
the standard asks. Gating: blocks under -70 LUFS are dropped, then blocks more than 10 LU under
the loudness of the rest. The streamed meter keeps one float per 100 ms (29 KB per hour), never
the signal, and gives the same figure as pyloudnorm on the whole array (same block count,
including pyloudnorm's last, partial block).

True peak: the largest absolute sample after 4x oversampling with ``resample_poly``'s own
interpolation filter, streamed as four short convolutions (:class:`TruePeakMeter`).
"""

from __future__ import annotations

import functools
import math

import numpy as np
from scipy import signal

ABSOLUTE_GATE = -70.0  # LUFS
RELATIVE_GATE = -10.0  # LU under the absolute-gated loudness
BLOCK_SECONDS = 0.4
STEPS_PER_BLOCK = 4  # 100 ms steps: 75 % overlap
CHANNEL_WEIGHTS = (1.0, 1.0, 1.0, 1.41, 1.41)
#: Shortest signal that holds one gating block.
MIN_SECONDS = BLOCK_SECONDS


def _biquad(kind: str, *, gain_db: float, q: float, fc: float, sr: int) -> np.ndarray:
    a_ = 10 ** (gain_db / 40.0)
    w0 = 2.0 * math.pi * fc / sr
    alpha = math.sin(w0) / (2.0 * q)
    cw = math.cos(w0)
    if kind == "high_shelf":
        sa = 2 * math.sqrt(a_) * alpha
        b = [a_ * ((a_ + 1) + (a_ - 1) * cw + sa), -2 * a_ * ((a_ - 1) + (a_ + 1) * cw)]
        b.append(a_ * ((a_ + 1) + (a_ - 1) * cw - sa))
        a = [(a_ + 1) - (a_ - 1) * cw + sa, 2 * ((a_ - 1) - (a_ + 1) * cw)]
        a.append((a_ + 1) - (a_ - 1) * cw - sa)
    else:  # high_pass
        b = [(1 + cw) / 2, -(1 + cw), (1 + cw) / 2]
        a = [1 + alpha, -2 * cw, 1 - alpha]
    return np.array(b + a) / a[0]


def k_weighting_sos(*, sr: int) -> np.ndarray:
    """The K-weighting filter of BS.1770 at ``sr``, as second-order sections, shape ``(2, 6)``.

    >>> sos = k_weighting_sos(sr=48000)
    >>> sos.shape
    (2, 6)
    >>> w, h = signal.sosfreqz(sos, worN=[1000.0, 10000.0], fs=48000)
    >>> [round(float(20 * np.log10(abs(v))), 1) for v in h]  # about +0.7 dB at 1 kHz, +4 dB high
    [0.7, 4.0]
    """
    return np.stack(
        [
            _biquad("high_shelf", gain_db=4.0, q=1 / math.sqrt(2), fc=1500.0, sr=sr),
            _biquad("high_pass", gain_db=0.0, q=0.5, fc=38.0, sr=sr),
        ]
    )


def _as_2d(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.float64)
    return x[np.newaxis, :] if x.ndim == 1 else x


class LoudnessMeter:
    """Integrated loudness of a signal fed in blocks of shape ``(channels, m)``.

    >>> sr = 48000
    >>> tone = 0.1 * np.sin(2 * np.pi * 1000 * np.arange(sr * 3) / sr)  # -20 dBFS RMS + 0.7 dB
    >>> meter = LoudnessMeter(sr=sr, channels=1)
    >>> for i in range(0, tone.size, 10000):
    ...     meter.feed(tone[np.newaxis, i:i + 10000])
    >>> round(meter.result(), 1)
    -23.0
    """

    def __init__(self, *, sr: int, channels: int) -> None:
        if channels > len(CHANNEL_WEIGHTS):
            raise ValueError(f"BS.1770 weights at most {len(CHANNEL_WEIGHTS)} channels")
        self.sr = sr
        self.channels = channels
        self.frames = 0
        self._sos = k_weighting_sos(sr=sr)
        self._zi = np.zeros((self._sos.shape[0], channels, 2))
        self._weights = np.array(CHANNEL_WEIGHTS[:channels])[:, np.newaxis]
        self._steps: list[float] = []  # weighted sum of squares per 100 ms step
        self._acc = 0.0  # the step being filled

    def _bound(self, k: int) -> int:
        """First frame of 100 ms step ``k``."""
        return k * self.sr // 10

    def feed(self, block: np.ndarray) -> None:
        block = _as_2d(block)
        if block.shape[0] != self.channels:
            raise ValueError(f"expected {self.channels} channels, got {block.shape[0]}")
        y, self._zi = signal.sosfilt(self._sos, block, axis=-1, zi=self._zi)
        energy = np.sum(self._weights * y * y, axis=0)
        start = self.frames
        self.frames += block.shape[1]
        pos = 0
        while pos < energy.size:
            k = len(self._steps)
            end = min(self._bound(k + 1) - start, energy.size)
            self._acc += float(energy[pos:end].sum())
            pos = end
            if start + pos == self._bound(k + 1):
                self._steps.append(self._acc)
                self._acc = 0.0

    @property
    def seconds(self) -> float:
        return self.frames / self.sr

    def block_loudness(self) -> np.ndarray:
        """Loudness of every 400 ms gating block (LUFS; -inf for digital silence)."""
        steps = np.array(self._steps + ([self._acc] if self._acc else []))
        n_blocks = int(round((self.seconds - BLOCK_SECONDS) / (BLOCK_SECONDS / STEPS_PER_BLOCK)))
        n_blocks += 1
        if self.seconds < BLOCK_SECONDS or n_blocks < 1:
            return np.zeros(0)
        padded = np.concatenate([steps, np.zeros(n_blocks + STEPS_PER_BLOCK)])
        sums = np.convolve(padded, np.ones(STEPS_PER_BLOCK), mode="valid")[:n_blocks]
        z = sums / (BLOCK_SECONDS * self.sr)
        with np.errstate(divide="ignore"):
            return -0.691 + 10 * np.log10(np.maximum(z, 0.0))

    def result(self) -> float:
        """Integrated loudness in LUFS: ``-inf`` when no block passes the -70 LUFS gate,
        ``nan`` when the signal is shorter than one 400 ms block."""
        if self.seconds < BLOCK_SECONDS:
            return float("nan")
        lk = self.block_loudness()
        z = 10 ** ((lk + 0.691) / 10)
        gated = lk >= ABSOLUTE_GATE
        if not gated.any():
            return float("-inf")
        relative = -0.691 + 10 * math.log10(float(z[gated].mean())) + RELATIVE_GATE
        keep = gated & (lk > relative)
        if not keep.any():
            return float("-inf")
        return -0.691 + 10 * math.log10(float(z[keep].mean()))


def integrated_loudness(x: np.ndarray, *, sr: int) -> float:
    """Integrated loudness (LUFS) of ``x``, shape ``(n,)`` or ``(channels, n)``.

    >>> sr = 16000
    >>> noise = np.random.default_rng(1).standard_normal(sr * 5) * 0.05
    >>> round(integrated_loudness(noise, sr=sr) - integrated_loudness(noise * 2, sr=sr), 2)
    -6.02
    """
    x = _as_2d(x)
    meter = LoudnessMeter(sr=sr, channels=x.shape[0])
    meter.feed(x)
    return meter.result()


@functools.lru_cache(maxsize=8)
def _phases(oversample: int) -> np.ndarray:
    """The polyphase branches of ``resample_poly``'s own interpolation filter (Kaiser, beta 5,
    ``10 * oversample`` taps each side), time-reversed, one column per output phase: shape
    ``(taps, oversample)``."""
    half = 10 * oversample
    h = signal.firwin(2 * half + 1, 1.0 / oversample, window=("kaiser", 5.0)) * oversample
    taps = -(-h.size // oversample)
    out = np.zeros((taps, oversample))
    for r in range(oversample):
        branch = h[r::oversample]
        out[: branch.size, r] = branch[::-1]
    return out


class TruePeakMeter:
    """Largest absolute sample after ``oversample``-times oversampling, fed in blocks
    ``(channels, m)``; ``result()`` is linear (1.0 = full scale).

    The interpolation is ``resample_poly``'s (same filter, same sample grid), run as
    ``oversample`` short convolutions carried across blocks; the ends are zero-padded and the
    filter's ring-out past them counts too, so the figure is never below ``resample_poly``'s.
    """

    def __init__(self, *, sr: int, oversample: int = 4) -> None:
        self.oversample = oversample
        self._phases = _phases(oversample)
        self._ctx = self._phases.shape[0] - 1
        self._carry: np.ndarray | None = None
        self.peak = 0.0

    def _run(self, x: np.ndarray) -> None:
        # np.convolve per branch: no BLAS threads (they oversubscribe a busy machine)
        for channel in x:
            for r in range(self.oversample):
                y = np.convolve(channel, self._phases[::-1, r], mode="valid")
                if y.size:
                    self.peak = max(self.peak, float(np.max(np.abs(y))))

    def feed(self, block: np.ndarray) -> None:
        block = _as_2d(block)
        if self._carry is None:
            self._carry = np.zeros((block.shape[0], self._ctx))
        self.peak = max(self.peak, float(np.max(np.abs(block), initial=0.0)))
        x = np.concatenate([self._carry, block], axis=1)
        self._run(x)
        self._carry = x[:, x.shape[1] - self._ctx :]

    def result(self) -> float:
        if self._carry is not None:
            self._run(np.concatenate([self._carry, np.zeros_like(self._carry)], axis=1))
            self._carry = None
        return self.peak


def true_peak(x: np.ndarray, *, sr: int, oversample: int = 4) -> float:
    """True peak of ``x`` (shape ``(n,)`` or ``(channels, n)``), linear.

    An inter-sample peak: a sine at a quarter of the sample rate, sampled 45 degrees off its
    crests, has sample peak 0.707 but true peak 1.0.

    >>> sr = 8000
    >>> x = np.sin(2 * np.pi * 2000 * np.arange(800) / sr + np.pi / 4)
    >>> round(float(np.abs(x).max()), 3), round(true_peak(x, sr=sr), 1)
    (0.707, 1.0)
    """
    meter = TruePeakMeter(sr=sr, oversample=oversample)
    meter.feed(_as_2d(x))
    return meter.result()


def to_db(value: float) -> float:
    """``20 log10(value)``; ``-inf`` for 0.

    >>> to_db(0.5), to_db(0.0)
    (-6.020599913279624, -inf)
    """
    return 20 * math.log10(value) if value > 0 else float("-inf")
