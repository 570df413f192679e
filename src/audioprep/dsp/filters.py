"""Low-pass, high-pass and notch filters (scipy), whole-array and block-streamed.

Signals have time on the last axis, shape ``(..., n)`` as in librosa. Filters are second-order
sections (``sos``, shape ``(n_sections, 6)``) so that high orders stay numerically stable.

Roll-off and order. A Butterworth filter of order ``N`` falls by about ``6.02 * N`` dB per octave
past its cut-off (exactly ``10*log10(1 + 4**N)`` dB one octave out). Applied zero-phase
(forward then backward) its magnitude is squared, so the roll-off doubles. :func:`order_for_rolloff`
picks the smallest order whose roll-off, as applied, reaches the one asked for; ``passes``
cascades the whole filter that many times, multiplying the attenuation.

Streaming. :class:`CausalStream` filters block after block, carrying the filter state, and gives
exactly the samples of one whole-array ``sosfilt``. Zero-phase filtering needs the future, so
:class:`ZeroPhaseStream` does what :func:`scipy.signal.sosfiltfilt` does in two streamed passes:
the forward pass (with the same odd-extension padding and initial conditions at both ends) runs
block by block into a temporary float64 file; the backward pass then reads that file in blocks
from the end, again carrying the state. Blocks are joined by the carried state alone, nothing is
cross-faded or overlapped, so the output equals ``sosfiltfilt`` on the whole array.
"""

from __future__ import annotations

import contextlib
import math
import os
import tempfile
from collections.abc import Iterable, Iterator

import numpy as np
from scipy import signal

BUTTERWORTH_DB_PER_OCTAVE = 20 * math.log10(2)  # 6.02 dB per octave per order


def order_for_rolloff(rolloff_db: float, *, zero_phase: bool = True) -> int:
    """Smallest Butterworth order whose roll-off (dB/octave, as applied) reaches ``rolloff_db``.

    >>> order_for_rolloff(36, zero_phase=False), order_for_rolloff(36, zero_phase=True)
    (6, 3)
    """
    if not rolloff_db > 0:
        raise ValueError(f"roll-off must be more than 0 dB per octave, got {rolloff_db}")
    per_order = BUTTERWORTH_DB_PER_OCTAVE * (2 if zero_phase else 1)
    return max(1, math.ceil(rolloff_db / per_order - 1e-9))


def _check_frequency(freq: float, sr: int, what: str) -> None:
    if not 0 < freq < sr / 2:
        raise ValueError(f"{what} {freq:g} Hz must be above 0 and below Nyquist ({sr / 2:g} Hz)")


def butter_sos(kind: str, cutoff: float, *, sr: int, order: int) -> np.ndarray:
    """A Butterworth ``"lowpass"`` or ``"highpass"`` as second-order sections, shape ``(k, 6)``."""
    _check_frequency(cutoff, sr, f"{kind} cut-off")
    if order < 1:
        raise ValueError("order must be at least 1")
    return signal.butter(order, cutoff, btype=kind, fs=sr, output="sos")


def notch_sos(freq: float, *, sr: int, q: float = 30.0) -> np.ndarray:
    """A second-order IIR notch at ``freq`` Hz with quality ``q`` (bandwidth ``freq / q``)."""
    _check_frequency(freq, sr, "notch frequency")
    if not q > 0:
        raise ValueError(f"notch Q must be more than 0, got {q}")
    b, a = signal.iirnotch(freq, q, fs=sr)
    return signal.tf2sos(b, a)


def chain_sos(sections: Iterable[np.ndarray], *, passes: int = 1) -> np.ndarray:
    """Cascade filters (each ``(k, 6)``), the whole chain ``passes`` times, into one sos array."""
    parts = [np.atleast_2d(s) for s in sections]
    if not parts:
        raise ValueError("no filter to apply")
    if passes < 1:
        raise ValueError("passes must be at least 1")
    return np.vstack(parts * passes)


def _padlen(sos: np.ndarray, n: int) -> int:
    """sosfiltfilt's default padding length, limited to what a short signal allows."""
    ntaps = 2 * len(sos) + 1
    ntaps -= min(int((sos[:, 2] == 0).sum()), int((sos[:, 5] == 0).sum()))
    return min(3 * ntaps, max(n - 1, 0))


def apply_sos(y: np.ndarray, sos: np.ndarray, *, zero_phase: bool = True) -> np.ndarray:
    """Filter ``y`` (shape ``(..., n)``) with ``sos``; returns float64 of the same shape.

    Zero-phase is ``scipy.signal.sosfiltfilt`` (odd padding); causal is ``sosfilt`` from rest.
    """
    y = np.asarray(y, dtype=np.float64)
    if y.shape[-1] == 0:
        return y.copy()
    if zero_phase:
        return signal.sosfiltfilt(sos, y, axis=-1, padlen=_padlen(sos, y.shape[-1]))
    return signal.sosfilt(sos, y, axis=-1)


class CausalStream:
    """Causal filtering block by block, equal to one ``sosfilt`` over the concatenated blocks.

    >>> sos = butter_sos("lowpass", 1000, sr=16000, order=4)
    >>> x = np.random.default_rng(0).standard_normal(10000)
    >>> s = CausalStream(sos, channels=1)
    >>> y = np.concatenate([s.process(b[None])[0] for b in np.array_split(x, 7)])
    >>> bool(np.array_equal(y, apply_sos(x, sos, zero_phase=False)))
    True
    """

    def __init__(self, sos: np.ndarray, *, channels: int) -> None:
        self.sos = sos
        self.zi = np.zeros((len(sos), channels, 2))

    def process(self, block: np.ndarray) -> np.ndarray:
        """Filter one block of shape ``(channels, m)``; returns float64 ``(channels, m)``."""
        if block.shape[-1] == 0:
            return np.zeros(block.shape, dtype=np.float64)
        out, self.zi = signal.sosfilt(self.sos, np.asarray(block, np.float64), axis=-1, zi=self.zi)
        return out


class RawBuffer:
    """A temporary file of float64 frames, shape ``(channels, n)``, written and read by position."""

    def __init__(self, channels: int, *, tmp_dir: str | None = None) -> None:
        self.channels = channels
        fd, self.path = tempfile.mkstemp(prefix="audioprep-", suffix=".f64", dir=tmp_dir)
        self._fh = os.fdopen(fd, "w+b")
        self._frame = 8 * channels

    def write_at(self, pos: int, block: np.ndarray) -> None:
        self._fh.seek(pos * self._frame)
        self._fh.write(np.ascontiguousarray(np.asarray(block, np.float64).T).tobytes())

    def read(self, pos: int, count: int) -> np.ndarray:
        """``count`` frames from ``pos`` as ``(channels, count)`` (fewer at the end)."""
        self._fh.seek(pos * self._frame)
        data = np.frombuffer(self._fh.read(count * self._frame), dtype=np.float64)
        return data.reshape(-1, self.channels).T

    def close(self) -> None:
        self._fh.close()
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.path)

    def __enter__(self) -> RawBuffer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class ZeroPhaseStream:
    """Zero-phase filtering of a signal fed in blocks, equal to :func:`apply_sos` (zero-phase).

    :meth:`feed` every block of shape ``(channels, m)`` in order: the forward pass runs on it at
    once, its output spilled to a temporary float64 file. The total length ``n`` is known in
    advance, because sosfiltfilt pads both ends by odd extension. :meth:`backward` then yields
    ``(start, block)`` pairs, last block first: ``block`` is the output for samples
    ``start:start + m``. Memory is bounded by the block size; disk use is 8 bytes per sample.
    The first block fed must hold at least ``padlen + 1`` samples (or the whole signal).
    """

    def __init__(
        self,
        sos: np.ndarray,
        *,
        channels: int,
        n: int,
        block: int = 1 << 16,
        tmp_dir: str | None = None,
    ) -> None:
        self.sos = sos
        self.channels = channels
        self.n = n
        self.block = block
        self.pad = _padlen(sos, n)
        self._zi0 = signal.sosfilt_zi(sos)[:, None, :]  # (sections, 1, 2)
        self._zi: np.ndarray | None = None
        self._fed = 0
        self._tail = np.zeros((channels, 0))
        self._buf = RawBuffer(channels, tmp_dir=tmp_dir)
        self._written = 0

    def _forward(self, x: np.ndarray) -> None:
        out, self._zi = signal.sosfilt(self.sos, x, axis=-1, zi=self._zi)
        self._buf.write_at(self._written, out)
        self._written += out.shape[-1]

    def feed(self, block: np.ndarray) -> None:
        """Forward-filter the next block (shape ``(channels, m)``)."""
        x = np.asarray(block, dtype=np.float64)
        if x.shape[-1] == 0:
            return
        if self._fed == 0:
            if x.shape[-1] < min(self.pad + 1, self.n):
                raise ValueError("the first block must hold at least padlen + 1 samples")
            front = 2 * x[:, :1] - x[:, self.pad : 0 : -1]  # sosfiltfilt's odd extension
            ext0 = front[:, :1] if self.pad else x[:, :1]
            self._zi = self._zi0 * ext0[None, :, :]
            if self.pad:
                self._forward(front)
        self._fed += x.shape[-1]
        if self._fed > self.n:
            raise ValueError(f"fed more than the {self.n} samples announced")
        self._tail = np.concatenate([self._tail, x], axis=-1)[:, -(self.pad + 1) :]
        self._forward(x)

    def backward(self) -> Iterator[tuple[int, np.ndarray]]:
        """Yield ``(start, block)`` of the zero-phase output, from the end of the signal back."""
        if self._fed != self.n:
            raise ValueError(f"fed {self._fed} samples, expected {self.n}")
        if self.n == 0:
            return
        if self.pad:
            back = 2 * self._tail[:, -1:] - self._tail[:, -2 : -(self.pad + 2) : -1]
            self._forward(back)
        y_last = self._buf.read(self._written - 1, 1)  # (channels, 1)
        zi = self._zi0 * y_last[None, :, :]
        end_keep = self.pad + self.n
        pos = self._written
        while pos > self.pad:
            start = max(pos - self.block, self.pad)
            chunk = self._buf.read(start, pos - start)[:, ::-1]
            out, zi = signal.sosfilt(self.sos, chunk, axis=-1, zi=zi)
            out = out[:, ::-1]  # forward time order, covering [start, pos)
            hi = min(pos, end_keep)
            if hi > start:
                yield start - self.pad, out[:, : hi - start]
            pos = start

    def close(self) -> None:
        self._buf.close()

    def __enter__(self) -> ZeroPhaseStream:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class LongTermSpectrum:
    """Welch power spectrum averaged over a whole signal fed block by block.

    >>> lts = LongTermSpectrum(sr=16000, nperseg=4096)
    >>> lts.feed(np.random.default_rng(0).standard_normal((1, 16000)))
    >>> freqs, psd = lts.result()
    >>> freqs.shape == psd.shape == (2049,)
    True
    """

    def __init__(self, *, sr: int, nperseg: int = 8192) -> None:
        self.sr = sr
        self.nperseg = nperseg
        self._sum: np.ndarray | None = None
        self._count = 0
        self._carry = np.zeros(0)

    def feed(self, block: np.ndarray) -> None:
        """Add a block of shape ``(channels, m)``; channels are averaged to mono first."""
        mono = np.asarray(block, np.float64).mean(axis=0)
        x = np.concatenate([self._carry, mono])
        usable = (len(x) // self.nperseg) * self.nperseg
        if usable:
            freqs, psd = signal.welch(
                x[:usable], fs=self.sr, nperseg=self.nperseg, noverlap=0, average="mean"
            )
            segments = usable // self.nperseg
            self._sum = psd * segments if self._sum is None else self._sum + psd * segments
            self._count += segments
        self._carry = x[usable:]

    def result(self) -> tuple[np.ndarray, np.ndarray]:
        """``(freqs, psd)``; a signal shorter than one segment uses what it has."""
        if self._count == 0:
            n = max(len(self._carry), 16)
            return signal.welch(
                np.pad(self._carry, (0, n - len(self._carry))), fs=self.sr, nperseg=n
            )
        freqs = np.fft.rfftfreq(self.nperseg, 1 / self.sr)
        return freqs, self._sum / self._count


def find_tonal_peaks(
    freqs: np.ndarray,
    psd: np.ndarray,
    *,
    n: int,
    min_prominence_db: float = 10.0,
    max_width_hz: float = 40.0,
    baseline_hz: float = 400.0,
    fmin: float = 40.0,
) -> list[tuple[float, float]]:
    """The ``n`` strongest narrow tonal peaks of a long-term spectrum, as ``(freq, prominence_db)``.

    A peak's prominence is its level above the spectrum's running median over ``baseline_hz``;
    only peaks at least ``min_prominence_db`` above it and at most ``max_width_hz`` wide (at
    half prominence) count, so broad speech formants and music are left alone. Fewer than ``n``
    peaks come back when fewer qualify. Strongest first.
    """
    if n <= 0 or len(freqs) < 3:
        return []
    db = 10 * np.log10(np.maximum(psd, 1e-30))
    df = float(freqs[1] - freqs[0])
    kernel = max(3, int(baseline_hz / df) | 1)
    baseline = (
        signal.medfilt(db, kernel_size=kernel)
        if kernel < len(db)
        else np.full_like(db, np.median(db))
    )
    excess = db - baseline
    peaks, props = signal.find_peaks(
        excess, height=min_prominence_db, width=(None, max_width_hz / df), rel_height=0.5
    )
    found = [
        (float(freqs[p]), float(h))
        for p, h in zip(peaks, props["peak_heights"], strict=True)
        if fmin <= freqs[p] < freqs[-1] * 0.98
    ]
    found.sort(key=lambda fh: -fh[1])
    return found[:n]
