"""Kaldi-compatible log mel filterbanks, the features CAM++ and most speaker networks take.

Arrays in, arrays out: ``fbank(wav (n,) float at 16 kHz) -> (frames, 80) float32``, with
Kaldi's defaults as ``torchaudio.compliance.kaldi.fbank`` applies them (25 ms Povey windows
every 10 ms, edges snipped, DC removed, pre-emphasis 0.97, 512-point power spectrum, 80
triangular bins on Kaldi's mel scale from 20 Hz to Nyquist, natural log floored at float32's
epsilon, no dither).

>>> import numpy as np
>>> fbank(np.zeros(16000)).shape
(98, 80)
>>> fbank(np.zeros(399)).shape
(0, 80)
"""

from __future__ import annotations

import functools

import numpy as np

SR = 16000
FRAME = 400  # 25 ms
SHIFT = 160  # 10 ms
NFFT = 512
BINS = 80


def kaldi_mel(freq: np.ndarray | float) -> np.ndarray:
    """Kaldi's mel scale, ``1127 ln(1 + f / 700)``.

    >>> round(float(kaldi_mel(700.0)), 2)
    781.18
    """
    return 1127.0 * np.log1p(np.asarray(freq, dtype=np.float64) / 700.0)


@functools.cache
def mel_banks(bins: int = BINS, nfft: int = NFFT, sr: int = SR, low: float = 20.0) -> np.ndarray:
    """Kaldi's triangular filters ``(bins, nfft // 2 + 1)`` (the Nyquist column is zero).

    >>> w = mel_banks()
    >>> w.shape, bool((w >= 0).all()), bool((w.sum(axis=1) > 0).all())
    ((80, 257), True, True)
    """
    lo, hi = kaldi_mel(low), kaldi_mel(sr / 2)
    delta = (hi - lo) / (bins + 1)
    mel = kaldi_mel(np.arange(nfft // 2) * (sr / nfft))
    left = lo + np.arange(bins)[:, None] * delta
    right = left + 2 * delta
    w = np.maximum(0.0, np.minimum((mel - left) / delta, (right - mel) / delta))
    w[(mel <= left) | (mel >= right)] = 0.0
    return np.pad(w, ((0, 0), (0, 1)))


@functools.cache
def povey_window(n: int = FRAME) -> np.ndarray:
    """Kaldi's Povey window: a Hann window to the power 0.85, ``(n,)``."""
    return (0.5 - 0.5 * np.cos(2 * np.pi * np.arange(n) / (n - 1))) ** 0.85


def fbank(wav: np.ndarray) -> np.ndarray:
    """Log mel filterbank energies of ``wav`` ``(n,)`` (16 kHz, any scale), ``(frames, 80)``
    float32 with ``frames = 1 + (n - 400) // 160`` (0 when ``n < 400``)."""
    x = np.asarray(wav, dtype=np.float64).reshape(-1)
    n = 1 + (len(x) - FRAME) // SHIFT if len(x) >= FRAME else 0
    if n == 0:
        return np.zeros((0, BINS), np.float32)
    out = np.empty((n, BINS), np.float32)
    banks, window = mel_banks(), povey_window()
    floor = float(np.finfo(np.float32).eps)
    for a in range(0, n, 2048):  # 20 s of frames at a time: bounded memory for long input
        k = min(n, a + 2048) - a
        idx = (a + np.arange(k))[:, None] * SHIFT + np.arange(FRAME)[None, :]
        f = x[idx]
        f = f - f.mean(axis=1, keepdims=True)
        f = np.concatenate([f[:, :1] * 0.03, f[:, 1:] - 0.97 * f[:, :-1]], axis=1)
        power = np.abs(np.fft.rfft(f * window, n=NFFT)) ** 2
        out[a : a + k] = np.log(np.maximum(power @ banks.T, floor))
    return out
