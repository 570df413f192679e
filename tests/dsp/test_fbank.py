"""dsp.fbank: Kaldi's log mel filterbanks, checked against a per-frame loop written from
Kaldi's recipe, and for the properties the speaker engine relies on."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from audioprep.dsp.fbank import BINS, fbank, kaldi_mel, mel_banks


def _reference(wav: np.ndarray) -> np.ndarray:
    """Kaldi's ComputeFeatures, one frame at a time (feature-window.cc, mel-computations.cc)."""
    out = []
    n = 1 + (len(wav) - 400) // 160
    window = (0.5 - 0.5 * np.cos(2 * np.pi * np.arange(400) / 399)) ** 0.85
    for i in range(n):
        frame = np.array(wav[i * 160 : i * 160 + 400], dtype=np.float64)
        frame -= frame.mean()  # remove_dc_offset
        for j in range(399, 0, -1):  # preemphasis, 0.97, first sample against itself
            frame[j] -= 0.97 * frame[j - 1]
        frame[0] -= 0.97 * frame[0]
        frame *= window
        spec = np.abs(np.fft.rfft(np.pad(frame, (0, 112)))) ** 2
        energies = []
        lo, hi = 1127 * np.log(1 + 20 / 700), 1127 * np.log(1 + 8000 / 700)
        delta = (hi - lo) / (BINS + 1)
        for b in range(BINS):
            left, center, right = lo + b * delta, lo + (b + 1) * delta, lo + (b + 2) * delta
            e = 0.0
            for k in range(256):
                m = 1127 * np.log(1 + k * 31.25 / 700)
                if left < m < right:
                    w = (
                        (m - left) / (center - left)
                        if m <= center
                        else (right - m) / (right - center)
                    )
                    e += w * spec[k]
            energies.append(np.log(max(e, np.finfo(np.float32).eps)))
        out.append(energies)
    return np.array(out)


def test_equals_kaldis_recipe_frame_by_frame() -> None:
    wav = np.random.default_rng(1).normal(scale=0.1, size=1200)  # 6 frames
    assert np.allclose(fbank(wav), _reference(wav), atol=1e-4)


@settings(max_examples=30, deadline=None)
@given(st.integers(min_value=0, max_value=20000))
def test_frames_follow_kaldis_snip_edges(n: int) -> None:
    feats = fbank(np.random.default_rng(n).normal(size=n))
    assert feats.shape == (max(0, 1 + (n - 400) // 160) if n >= 400 else 0, BINS)
    assert feats.dtype == np.float32 and np.isfinite(feats).all()


@settings(max_examples=20, deadline=None)
@given(st.floats(min_value=0.5, max_value=100))
def test_a_gain_only_shifts_every_bin_by_the_same_amount(gain: float) -> None:
    # (above the floor: pre-emphasis leaves the lowest bins of quiet noise near float32's eps)
    wav = np.random.default_rng(0).normal(scale=0.5, size=4000)
    diff = fbank(wav * gain) - fbank(wav)
    assert np.allclose(diff, 2 * np.log(gain), atol=1e-3)  # gone after mean normalisation


@pytest.mark.parametrize("freq", [300.0, 1000.0, 3000.0])
def test_a_tone_lights_the_bin_whose_centre_is_nearest(freq: float) -> None:
    t = np.arange(16000) / 16000
    feats = fbank(np.sin(2 * np.pi * freq * t))
    lo, hi = kaldi_mel(20.0), kaldi_mel(8000.0)
    centres = lo + (np.arange(BINS) + 1) * (hi - lo) / (BINS + 1)
    assert (
        abs(int(feats.mean(axis=0).argmax()) - int(np.argmin(abs(centres - kaldi_mel(freq))))) <= 1
    )


def test_filters_cover_the_band_once() -> None:
    w = mel_banks()
    covered = w[:, 2:240].sum(axis=0)  # 62.5 Hz .. 7.5 kHz: neighbouring triangles sum to 1
    assert np.allclose(covered, 1.0, atol=0.02)
