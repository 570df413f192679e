"""Signal metrics of a recording, whole-array and in one streamed pass.

Signals have time on the last axis, mono ``(n,)`` or ``(channels, n)``, floats with full scale
at 1.0. Every metric has a whole-array function and is also computed by :class:`SignalMeter`,
which takes blocks ``(channels, m)`` and keeps only running sums (and one float per 100 ms for
loudness gating).

- **clipping ratio**: the share of samples that sit at or near full scale (``|x| >= level``,
  default 0.999) in runs of at least ``min_run`` (default 3) consecutive samples in a channel. A
  lone full-scale sample is a peak, a flat run is a clipped waveform.
- **WADA-SNR** (Kim and Stern, Interspeech 2008): speech amplitude is modelled as Gamma
  distributed (shape 0.4) and noise as Gaussian; the gap ``log E|x| - E log|x|`` grows with the
  SNR. The table from gap to SNR was computed from that model (Monte Carlo, fixed seed,
  :func:`compute_wada_table`) and is kept as :data:`WADA_GAPS`. Clamped to -10..60 dB: 60
  means "60 dB or cleaner than the model can tell", which is what gated or denoised
  recordings with near-digital silence between words read.
- **effective bandwidth**: the highest frequency whose long-term power (Welch, averaged over
  the whole signal) is within ``floor_db`` (default 50 dB) of the spectrum's peak. 8 kHz phone
  audio upsampled to 22.05 kHz reads under 4 kHz, a full-band recording near Nyquist.
- **DC offset**: the mean sample value (largest over channels).
- **silence share**: the share of 20 ms frames (channels averaged) whose RMS is below
  ``silence_db`` (default -50 dBFS).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from audioprep.dsp.filters import LongTermSpectrum
from audioprep.dsp.loudness import LoudnessMeter, TruePeakMeter, to_db

CLIP_LEVEL = 0.999
CLIP_MIN_RUN = 3
BANDWIDTH_FLOOR_DB = 50.0
BANDWIDTH_NPERSEG = 2048
SILENCE_DB = -50.0
SILENCE_FRAME = 0.02
WADA_SHAPE = 0.4
_EPS = 1e-10


def _as_2d(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.float64)
    return x[np.newaxis, :] if x.ndim == 1 else x


# -- clipping -------------------------------------------------------------------------------
class _ClipCounter:
    """Clipped samples in runs, counted across block boundaries (per channel)."""

    def __init__(self, channels: int, *, level: float, min_run: int) -> None:
        self.level = level
        self.min_run = min_run
        self.run = np.zeros(channels, dtype=np.int64)  # open run at the end of the last block
        self.clipped = 0
        self.samples = 0

    def feed(self, block: np.ndarray) -> None:
        self.samples += block.size
        hot = np.abs(block) >= self.level
        for c in range(block.shape[0]):
            h = hot[c]
            if not h.any():
                self._close(c)
                continue
            edges = np.diff(np.concatenate([[0], h.astype(np.int8), [0]]))
            starts, stops = np.flatnonzero(edges == 1), np.flatnonzero(edges == -1)
            lengths = stops - starts
            if starts[0] == 0:
                lengths[0] += self.run[c]
            elif self.run[c]:
                self._close(c)
            open_end = stops[-1] == h.size
            closed = lengths[:-1] if open_end else lengths
            self.clipped += int(closed[closed >= self.min_run].sum())
            self.run[c] = lengths[-1] if open_end else 0

    def _close(self, c: int) -> None:
        if self.run[c] >= self.min_run:
            self.clipped += int(self.run[c])
        self.run[c] = 0

    def result(self) -> float:
        for c in range(self.run.size):
            self._close(c)
        return self.clipped / self.samples if self.samples else 0.0


def clipping_ratio(
    x: np.ndarray, *, level: float = CLIP_LEVEL, min_run: int = CLIP_MIN_RUN
) -> float:
    """Share of samples at ``|x| >= level`` in runs of at least ``min_run`` (per channel).

    >>> clipping_ratio(np.array([0.1, 1.0, 1.0, 1.0, 0.2, 1.0, -0.3, -1.0, -1.0, 0.0]))
    0.3
    """
    x = _as_2d(x)
    counter = _ClipCounter(x.shape[0], level=level, min_run=min_run)
    counter.feed(x)
    return counter.result()


# -- WADA-SNR -------------------------------------------------------------------------------
#: The WADA statistic ``log E|x| - E log|x|`` (samples floored at 1e-10 of the peak) of
#: Gamma(0.4) speech plus Gaussian noise at each SNR from -10 to 60 dB in 1 dB steps: computed
#: by :func:`compute_wada_table` (400 000 samples, seed 1234) and kept here, since it costs
#: seconds to compute.
WADA_GAPS = (
    0.41241,
    0.41395,
    0.41569,
    0.41796,
    0.42140,
    0.42512,
    0.42933,
    0.43552,
    0.44247,
    0.45217,
    0.46256,
    0.47469,
    0.48957,
    0.50539,
    0.52351,
    0.54418,
    0.56619,
    0.58933,
    0.61350,
    0.63939,
    0.66654,
    0.69514,
    0.72396,
    0.75292,
    0.78169,
    0.81160,
    0.84046,
    0.86979,
    0.89872,
    0.92723,
    0.95443,
    0.98130,
    1.00832,
    1.03403,
    1.05920,
    1.08330,
    1.10672,
    1.12881,
    1.15105,
    1.17192,
    1.19199,
    1.21104,
    1.22980,
    1.24750,
    1.26443,
    1.28143,
    1.29732,
    1.31242,
    1.32663,
    1.34055,
    1.35363,
    1.36645,
    1.37877,
    1.39053,
    1.40180,
    1.41236,
    1.42230,
    1.43173,
    1.44092,
    1.45000,
    1.45846,
    1.46648,
    1.47448,
    1.48159,
    1.48861,
    1.49559,
    1.50216,
    1.50834,
    1.51399,
    1.51978,
    1.52510,
)


def compute_wada_table(*, n: int = 400_000, seed: int = 1234) -> np.ndarray:
    """Recompute :data:`WADA_GAPS` (a Monte Carlo estimate; fewer samples are less exact).

    >>> gaps = compute_wada_table(n=20_000)
    >>> bool(np.all(np.abs(gaps - np.array(WADA_GAPS)) < 0.05))
    True
    """
    rng = np.random.default_rng(seed)
    speech = rng.gamma(WADA_SHAPE, 1.0, n) * rng.choice([-1.0, 1.0], n)
    speech /= np.sqrt(np.mean(speech**2))
    noise = rng.standard_normal(n)
    gaps = []
    for snr in range(-10, 61):
        a = np.abs(speech + noise * 10 ** (-snr / 20))
        a = np.maximum(a / a.max(), _EPS)
        gaps.append(math.log(a.mean()) - float(np.log(a).mean()))
    return np.array(gaps)


def wada_table() -> tuple[np.ndarray, np.ndarray]:
    """``(snr_db, gap)``: :data:`WADA_GAPS` against SNR from -10 to 60 dB (increasing)."""
    return np.arange(-10.0, 61.0), np.maximum.accumulate(np.array(WADA_GAPS))


def _wada_from_sums(abs_sum: float, log_sum: float, peak: float, n: int) -> float | None:
    if n == 0 or peak <= 0:
        return None
    # normalised by the peak as in the original (the gap itself does not depend on scale)
    mean_abs = abs_sum / n / peak
    mean_log = log_sum / n - math.log(peak)
    gap = math.log(max(mean_abs, _EPS)) - mean_log
    snrs, gaps = wada_table()
    return float(np.interp(gap, gaps, snrs))


def wada_snr(x: np.ndarray) -> float | None:
    """WADA-SNR estimate in dB of a mono signal (channels are averaged); None for silence.

    >>> rng = np.random.default_rng(0)
    >>> speech = rng.gamma(0.4, 1.0, 80000) * rng.choice([-1, 1], 80000)
    >>> noise = rng.standard_normal(80000) * np.sqrt(np.mean(speech**2)) / 10  # 20 dB SNR
    >>> round(wada_snr(speech + noise))
    20
    """
    mono = _as_2d(x).mean(axis=0)
    a = np.abs(mono)
    peak = float(a.max(initial=0.0))
    log_sum = float(np.log(np.maximum(a, _EPS * peak)).sum()) if peak > 0 else 0.0
    return _wada_from_sums(float(a.sum()), log_sum, peak, a.size)


# -- bandwidth ------------------------------------------------------------------------------
def bandwidth_from_psd(
    freqs: np.ndarray, psd: np.ndarray, *, floor_db: float = BANDWIDTH_FLOOR_DB
) -> float | None:
    """Highest frequency whose power is within ``floor_db`` of the spectrum's peak; None for
    an all-zero spectrum. A running median over 5 bins goes first, so one stray bin (a tone,
    a spur) does not count while the edge of the band stays where it is.

    >>> f = np.linspace(0, 8000, 9)
    >>> bandwidth_from_psd(f, np.array([1, 1, 1, 1, 1, 1e-6, 1e-6, 1e-6, 1e-6]), floor_db=50)
    4000.0
    """
    from scipy.ndimage import median_filter

    psd = median_filter(np.asarray(psd, np.float64), size=5, mode="nearest")
    top = float(psd.max(initial=0.0))
    if top <= 0:
        return None
    above = np.flatnonzero(psd >= top * 10 ** (-floor_db / 10))
    return float(freqs[above[-1]])


def effective_bandwidth(
    x: np.ndarray, *, sr: int, floor_db: float = BANDWIDTH_FLOOR_DB
) -> float | None:
    """Effective bandwidth in Hz of ``x`` (channels averaged), see :func:`bandwidth_from_psd`.

    >>> sr = 22050
    >>> from scipy import signal
    >>> noise = np.random.default_rng(0).standard_normal(sr * 2)
    >>> lowpass = signal.ellip(10, 0.1, 90, 4000, fs=sr, output="sos")  # a phone line's band
    >>> narrow = signal.sosfilt(lowpass, noise)
    >>> effective_bandwidth(narrow, sr=sr) < 4500 < 9000 < effective_bandwidth(noise, sr=sr)
    True
    """
    lts = LongTermSpectrum(sr=sr, nperseg=BANDWIDTH_NPERSEG)
    lts.feed(_as_2d(x))
    return bandwidth_from_psd(*lts.result(), floor_db=floor_db)


# -- DC and silence -------------------------------------------------------------------------
def dc_offset(x: np.ndarray) -> float:
    """Mean sample value, the largest in magnitude over channels (sign kept).

    >>> dc_offset(np.array([[0.1, 0.3], [-0.5, -0.3]]))
    -0.4
    """
    means = _as_2d(x).mean(axis=1)
    return float(means[np.argmax(np.abs(means))]) if means.size else 0.0


def silence_share(
    x: np.ndarray, *, sr: int, silence_db: float = SILENCE_DB, frame: float = SILENCE_FRAME
) -> float:
    """Share of ``frame``-second frames (channels averaged) with RMS below ``silence_db`` dBFS.

    >>> sr = 1000
    >>> x = np.concatenate([np.zeros(sr), 0.1 * np.ones(3 * sr)])
    >>> silence_share(x, sr=sr)
    0.25
    """
    meter = _SilenceCounter(sr=sr, silence_db=silence_db, frame=frame)
    meter.feed(_as_2d(x))
    return meter.result()


class _SilenceCounter:
    def __init__(self, *, sr: int, silence_db: float, frame: float) -> None:
        self.size = max(1, int(round(frame * sr)))
        self.limit = 10 ** (silence_db / 10)  # mean square
        self._carry = np.zeros(0)
        self.frames = 0
        self.silent = 0

    def feed(self, block: np.ndarray) -> None:
        x = np.concatenate([self._carry, block.mean(axis=0)])
        usable = x.size // self.size * self.size
        ms = np.mean(x[:usable].reshape(-1, self.size) ** 2, axis=1)
        self.frames += ms.size
        self.silent += int(np.count_nonzero(ms < self.limit))
        self._carry = x[usable:]

    def result(self) -> float:
        frames, silent = self.frames, self.silent
        if self._carry.size:  # the last, partial frame counts
            frames += 1
            silent += int(np.mean(self._carry**2) < self.limit)
        return silent / frames if frames else 1.0


# -- everything in one pass -----------------------------------------------------------------
class SignalMeter:
    """Every metric above, plus integrated loudness and true peak, in one pass over blocks of
    shape ``(channels, m)``. ``result()`` gives a JSON-able dict (``None`` where a metric is
    undefined: loudness of a clip under 0.4 s or of silence, SNR or bandwidth of silence).

    >>> sr = 16000
    >>> x = 0.1 * np.random.default_rng(0).standard_normal((1, sr * 3))
    >>> meter = SignalMeter(sr=sr, channels=1)
    >>> for i in range(0, x.shape[1], 5000):
    ...     meter.feed(x[:, i:i + 5000])
    >>> r = meter.result()
    >>> sorted(r)  # doctest: +NORMALIZE_WHITESPACE
    ['bandwidth_hz', 'clipping', 'dc_offset', 'duration', 'loudness_lufs', 'sample_peak_db',
     'silence_share', 'snr_db', 'true_peak_db']
    >>> r["clipping"], r["silence_share"], 7900 < r["bandwidth_hz"] <= 8000
    (0.0, 0.0, True)
    """

    def __init__(
        self,
        *,
        sr: int,
        channels: int,
        clip_level: float = CLIP_LEVEL,
        clip_min_run: int = CLIP_MIN_RUN,
        bandwidth_floor_db: float = BANDWIDTH_FLOOR_DB,
        silence_db: float = SILENCE_DB,
    ) -> None:
        self.sr = sr
        self.channels = channels
        self.bandwidth_floor_db = bandwidth_floor_db
        self.loudness = LoudnessMeter(sr=sr, channels=channels) if channels <= 5 else None
        self.true_peak = TruePeakMeter(sr=sr)
        self.clip = _ClipCounter(channels, level=clip_level, min_run=clip_min_run)
        self.spectrum = LongTermSpectrum(sr=sr, nperseg=BANDWIDTH_NPERSEG)
        self.silence = _SilenceCounter(sr=sr, silence_db=silence_db, frame=SILENCE_FRAME)
        self.frames = 0
        self.peak = 0.0
        self.sums = np.zeros(channels)
        self.mono_peak = 0.0
        self.abs_sum = 0.0
        self.log_sum = 0.0  # sum of log|x| over non-zero samples (mono)
        self.zeros = 0  # zero samples, floored at 1e-10 of the peak in result()

    def feed(self, block: np.ndarray) -> None:
        block = _as_2d(block)
        if not np.isfinite(block).all():
            raise ValueError("the signal holds NaN or infinite samples")
        self.frames += block.shape[1]
        self.peak = max(self.peak, float(np.abs(block).max(initial=0.0)))
        self.sums += block.sum(axis=1)
        if self.loudness is not None:
            self.loudness.feed(block)
        self.true_peak.feed(block)
        self.clip.feed(block)
        self.spectrum.feed(block)
        self.silence.feed(block)
        a = np.abs(block.mean(axis=0))
        self.mono_peak = max(self.mono_peak, float(a.max(initial=0.0)))
        self.abs_sum += float(a.sum())
        nz = a[a > 0]
        self.log_sum += float(np.log(nz).sum())
        self.zeros += a.size - nz.size

    def result(self) -> dict[str, Any]:
        loud = self.loudness.result() if self.loudness is not None else float("nan")
        snr = None
        if self.mono_peak > 0:
            log_sum = self.log_sum + math.log(_EPS * self.mono_peak) * self.zeros
            snr = _wada_from_sums(self.abs_sum, log_sum, self.mono_peak, self.frames)
        bandwidth = (
            bandwidth_from_psd(*self.spectrum.result(), floor_db=self.bandwidth_floor_db)
            if self.frames
            else None
        )
        means = self.sums / max(self.frames, 1)
        return {
            "duration": round(self.frames / self.sr, 6),
            "loudness_lufs": round(loud, 2) if math.isfinite(loud) else None,
            "true_peak_db": _round_db(to_db(self.true_peak.result())),
            "sample_peak_db": _round_db(to_db(self.peak)),
            "clipping": round(self.clip.result(), 6),
            "snr_db": round(snr, 2) if snr is not None else None,
            "bandwidth_hz": round(bandwidth) if bandwidth is not None else None,
            "dc_offset": round(float(means[np.argmax(np.abs(means))]), 6) if means.size else 0.0,
            "silence_share": round(self.silence.result(), 4),
        }


def _round_db(value: float) -> float | None:
    return round(value, 2) if math.isfinite(value) else None


def si_sdr(reference: np.ndarray, estimate: np.ndarray) -> float:
    """Scale-invariant signal-to-distortion ratio in dB (Le Roux et al. 2019) of ``estimate``
    against ``reference`` (both shape ``(n,)``, same length; means removed first).

    >>> x = np.sin(np.arange(1000) / 7.0)
    >>> si_sdr(x, 0.5 * x) > 100, round(si_sdr(x, x + 0.1 * x[::-1]), 1)
    (True, 20.4)
    """
    ref = np.asarray(reference, dtype=np.float64) - np.mean(reference)
    est = np.asarray(estimate, dtype=np.float64) - np.mean(estimate)
    target = (est @ ref) / max(ref @ ref, 1e-20) * ref
    noise = est - target
    return float(10 * np.log10(max(target @ target, 1e-20) / max(noise @ noise, 1e-20)))
