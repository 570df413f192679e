"""DNSMOS windowing and features, written to match Microsoft's published ``dnsmos_local.py``
(and the PyPI package speechmos, which copies it) number for number, without librosa.

DNSMOS P.835 takes 16 kHz audio in windows of 9.01 s (144160 samples), hop 1 s (``hop`` below
chooses a longer one: 9.01 s scores every second once instead of about nine times); its models
give SIG, BAK and OVRL per window (mapped through fixed polynomials), and P.808 takes a
120-band log-mel spectrogram of the same window less its last 10 ms. The clip's scores are the
means over windows. Windows, as the reference computes them:

- a clip shorter than 9.01 s is repeated (doubled, then doubled again...) until it is at
  least 9.01 s long: a 0.1 s clip is scored on 128 copies of itself;
- the number of windows is ``int(floor(seconds) - 9.01) + 1`` (so a 20.5 s clip has 11, the
  last ending at 19.01 s: up to 1.99 s at the end are never scored);
- window ``i`` is ``audio[int(i * 16000) : int((i + 9.01) * 16000)]``, skipped when shorter than
  144160 samples (float rounding can do that; the reference does it too).

The mel spectrogram is librosa's ``melspectrogram(n_fft=321, hop_length=160, n_mels=120)``
(centred frames padded with zeros, periodic Hann window, Slaney mel scale and area
normalisation), then ``(power_to_db(S, ref=max, top_db=80) + 40) / 40``.
"""

from __future__ import annotations

import functools
import math

import numpy as np

SR = 16000
INPUT_LENGTH = 9.01
WINDOW = int(INPUT_LENGTH * SR)  # 144160
N_FFT = 321
HOP = 160
N_MELS = 120

#: The polynomials that map raw P.835 outputs to MOS (non-personalised DNSMOS), highest power
#: first (numpy.poly1d order).
POLY_SIG = (-0.08397278, 1.22083953, 0.0052439)
POLY_BAK = (-0.13166888, 1.60915514, -0.39604546)
POLY_OVRL = (-0.06766283, 1.11546468, 0.04602535)


def n_windows(n: int, *, sr: int = SR, hop: float = 1.0) -> int:
    """How many windows the reference scores for ``n`` samples (after repetition, see
    :func:`repeat_to_window`). ``hop`` (seconds between window starts) is 1 in the reference;
    a longer hop scores windows ``i * hop`` that end by the same last whole second.

    >>> n_windows(20 * 16000 + 8000), n_windows(9 * 16000 + 200), n_windows(10 * 16000)
    (11, 1, 1)
    >>> n_windows(20 * 16000 + 8000, hop=3.0), n_windows(40 * 16000, hop=9.01)
    (4, 4)
    """
    if hop == 1.0:  # the reference's own expression, kept verbatim
        return int(np.floor(n / sr) - INPUT_LENGTH) + 1
    return int((np.floor(n / sr) - INPUT_LENGTH) / hop) + 1


def window_bounds(i: int, *, sr: int = SR, hop: float = 1.0) -> tuple[int, int]:
    """``(start, stop)`` samples of window ``i``, rounded as the reference rounds them.

    >>> window_bounds(3), window_bounds(2, hop=3.0)
    ((48000, 192160), (96000, 240160))
    """
    if hop == 1.0:
        return int(i * sr), int((i + INPUT_LENGTH) * sr)
    return int(i * hop * sr), int((i * hop + INPUT_LENGTH) * sr)


def repeat_to_window(audio: np.ndarray, *, sr: int = SR) -> np.ndarray:
    """Double a clip shorter than 9.01 s until it is not, as the reference does; shape ``(n,)``.
    An empty clip is a ValueError (the reference loops forever).

    >>> repeat_to_window(np.ones(16000)).size  # 1 s -> 16 s
    256000
    """
    if audio.size == 0:
        raise ValueError("an empty clip has no DNSMOS window")
    need = int(INPUT_LENGTH * sr)
    while audio.size < need:
        audio = np.append(audio, audio)
    return audio


def _hz_to_mel(f: np.ndarray) -> np.ndarray:
    f = np.asarray(f, dtype=np.float64)
    mel = f / (200.0 / 3)
    log_t = f >= 1000.0
    return np.where(log_t, 15.0 + np.log(np.maximum(f, 1e-10) / 1000.0) / (np.log(6.4) / 27.0), mel)


def _mel_to_hz(m: np.ndarray) -> np.ndarray:
    m = np.asarray(m, dtype=np.float64)
    f = m * (200.0 / 3)
    log_t = m >= 15.0
    return np.where(log_t, 1000.0 * np.exp((np.log(6.4) / 27.0) * (m - 15.0)), f)


@functools.lru_cache(maxsize=4)
def mel_filterbank(*, sr: int = SR, n_fft: int = N_FFT, n_mels: int = N_MELS) -> np.ndarray:
    """Slaney-style mel filterbank (librosa's default), shape ``(n_mels, n_fft // 2 + 1)``.

    >>> fb = mel_filterbank()
    >>> fb.shape, bool((fb >= 0).all())
    ((120, 161), True)
    """
    fftfreqs = np.fft.rfftfreq(n_fft, 1.0 / sr)
    mel_f = _mel_to_hz(np.linspace(_hz_to_mel(0.0), _hz_to_mel(sr / 2.0), n_mels + 2))
    fdiff = np.diff(mel_f)
    ramps = mel_f[:, np.newaxis] - fftfreqs[np.newaxis, :]
    lower = -ramps[:-2] / fdiff[:-1, np.newaxis]
    upper = ramps[2:] / fdiff[1:, np.newaxis]
    weights = np.maximum(0.0, np.minimum(lower, upper))
    weights *= (2.0 / (mel_f[2 : n_mels + 2] - mel_f[:n_mels]))[:, np.newaxis]
    return weights.astype(np.float32)


def p808_features(segment: np.ndarray) -> np.ndarray:
    """P.808 input for one window: log-mel of ``segment[:-160]``, shape ``(900, 120)`` float32
    for a 144160-sample window.

    >>> p808_features(np.zeros(WINDOW, np.float32) + 0.01).shape
    (900, 120)
    """
    y = np.asarray(segment[:-HOP], dtype=np.float32)
    pad = N_FFT // 2
    y = np.pad(y, (pad, pad))
    frames = np.lib.stride_tricks.sliding_window_view(y, N_FFT)[::HOP]
    window = (0.5 - 0.5 * np.cos(2 * np.pi * np.arange(N_FFT) / N_FFT)).astype(np.float32)
    power = np.abs(np.fft.rfft(frames * window, axis=-1)) ** 2  # (frames, 161)
    mel = power @ mel_filterbank().T.astype(np.float64)  # (frames, 120)
    amin = 1e-10
    ref = max(float(mel.max(initial=0.0)), amin)
    db = 10.0 * np.log10(np.maximum(amin, mel)) - 10.0 * math.log10(ref)
    db = np.maximum(db, db.max() - 80.0)
    return ((db + 40.0) / 40.0).astype(np.float32)


def polyfit(sig: float, bak: float, ovrl: float) -> tuple[float, float, float]:
    """Map raw P.835 outputs to SIG, BAK and OVRL MOS.

    >>> [round(v, 3) for v in polyfit(3.0, 3.0, 3.0)]
    [2.912, 3.246, 2.783]
    """
    return (
        float(np.polyval(POLY_SIG, sig)),
        float(np.polyval(POLY_BAK, bak)),
        float(np.polyval(POLY_OVRL, ovrl)),
    )
