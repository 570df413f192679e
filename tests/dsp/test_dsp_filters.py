"""Unit tests of the filters: measured responses, streaming equality, tonal peak finding."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from audioprep.dsp.filters import (
    CausalStream,
    LongTermSpectrum,
    ZeroPhaseStream,
    apply_sos,
    butter_sos,
    chain_sos,
    find_tonal_peaks,
    notch_sos,
    order_for_rolloff,
)


def tone(freq: float, sr: int, seconds: float = 2.0, amp: float = 0.5) -> np.ndarray:
    t = np.arange(int(sr * seconds)) / sr
    return amp * np.sin(2 * np.pi * freq * t)


def gain_db(sos: np.ndarray, freq: float, sr: int, *, zero_phase: bool) -> float:
    """Measured gain of a steady tone through the filter (middle half, away from the edges)."""
    x = tone(freq, sr)
    y = apply_sos(x, sos, zero_phase=zero_phase)
    mid = slice(len(x) // 4, 3 * len(x) // 4)
    return 20 * np.log10(np.sqrt(np.mean(y[mid] ** 2)) / np.sqrt(np.mean(x[mid] ** 2)))


def lowpass(cutoff: float, sr: int, rolloff: float, passes: int, zero_phase: bool) -> np.ndarray:
    order = order_for_rolloff(rolloff, zero_phase=zero_phase)
    return chain_sos([butter_sos("lowpass", cutoff, sr=sr, order=order)], passes=passes)


def test_order_for_rolloff() -> None:
    assert order_for_rolloff(36, zero_phase=False) == 6
    assert order_for_rolloff(36, zero_phase=True) == 3
    assert order_for_rolloff(6, zero_phase=False) == 1
    assert order_for_rolloff(1, zero_phase=True) == 1
    with pytest.raises(ValueError):
        order_for_rolloff(-6)


@pytest.mark.parametrize("zero_phase", [True, False])
@pytest.mark.parametrize(("rolloff", "passes"), [(36, 1), (36, 2), (24, 3), (12, 1)])
def test_lowpass_measured_response(zero_phase, rolloff, passes) -> None:
    sr, cutoff = 44100, 5000
    sos = lowpass(cutoff, sr, rolloff, passes, zero_phase)
    assert abs(gain_db(sos, 1000, sr, zero_phase=zero_phase)) <= 0.5
    # one octave above the cut-off: at least the asked roll-off, times the passes
    assert gain_db(sos, 2 * cutoff, sr, zero_phase=zero_phase) <= -rolloff * passes


def test_lowpass_sweep_is_monotonic_past_cutoff() -> None:
    sr = 16000
    sos = lowpass(3000, sr, 36, 1, True)
    gains = [gain_db(sos, f, sr, zero_phase=True) for f in (3500, 4500, 5500, 6500, 7500)]
    assert all(b < a for a, b in zip(gains, gains[1:], strict=False))


@pytest.mark.parametrize("zero_phase", [True, False])
def test_highpass_measured_response(zero_phase) -> None:
    sr = 16000
    order = order_for_rolloff(24, zero_phase=zero_phase)
    sos = butter_sos("highpass", 80, sr=sr, order=order)
    assert abs(gain_db(sos, 1000, sr, zero_phase=zero_phase)) <= 0.5
    assert gain_db(sos, 40, sr, zero_phase=zero_phase) <= -24


@pytest.mark.parametrize("zero_phase", [True, False])
def test_notch_removes_its_frequency_and_spares_an_octave_away(zero_phase) -> None:
    sr = 16000
    sos = notch_sos(6000, sr=sr, q=30)
    assert gain_db(sos, 6000, sr, zero_phase=zero_phase) <= -30
    assert abs(gain_db(sos, 3000, sr, zero_phase=zero_phase)) <= 1


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: butter_sos("lowpass", 9000, sr=16000, order=2), "below Nyquist"),
        (lambda: butter_sos("highpass", 0, sr=16000, order=2), "above 0"),
        (lambda: notch_sos(6000, sr=16000, q=0), "Q must be more than 0"),
        (lambda: order_for_rolloff(0), "more than 0 dB"),
        (lambda: chain_sos([], passes=1), "no filter"),
    ],
)
def test_invalid_settings(call, message) -> None:
    with pytest.raises(ValueError, match=message):
        call()


SOS = chain_sos(
    [butter_sos("lowpass", 3000, sr=16000, order=3), notch_sos(1000, sr=16000)], passes=2
)


@settings(max_examples=40, deadline=None)
@given(st.integers(1, 20000), st.integers(1, 2), st.integers(80, 5000), st.integers(0, 2**31))
def test_zero_phase_stream_equals_whole_array(n, channels, block, seed) -> None:
    x = np.random.default_rng(seed).standard_normal((channels, n))
    expected = apply_sos(x, SOS, zero_phase=True)
    got = np.full_like(x, np.nan)
    with ZeroPhaseStream(SOS, channels=channels, n=n, block=block) as zp:
        for part in np.array_split(x, max(1, n // block), axis=-1):
            zp.feed(part)
        for start, out in zp.backward():
            got[:, start : start + out.shape[-1]] = out
    np.testing.assert_array_equal(got, expected)


@settings(max_examples=30, deadline=None)
@given(st.integers(1, 20000), st.integers(1, 50), st.integers(0, 2**31))
def test_causal_stream_equals_whole_array(n, parts, seed) -> None:
    x = np.random.default_rng(seed).standard_normal((2, n))
    stream = CausalStream(SOS, channels=2)
    got = np.concatenate([stream.process(p) for p in np.array_split(x, parts, axis=-1)], axis=-1)
    np.testing.assert_array_equal(got, apply_sos(x, SOS, zero_phase=False))


def test_tonal_peaks_found_in_noise_and_not_in_plain_noise() -> None:
    sr = 16000
    rng = np.random.default_rng(3)
    noise = 0.1 * rng.standard_normal(sr * 20)
    whine = noise + tone(6000, sr, 20, 0.05) + tone(1234, sr, 20, 0.02)
    lts = LongTermSpectrum(sr=sr)
    for part in np.array_split(whine[None], 13, axis=-1):
        lts.feed(part)
    peaks = find_tonal_peaks(*lts.result(), n=3)
    assert [round(f / 10) * 10 for f, _ in peaks[:2]] == [6000, 1230]
    assert len(peaks) == 2  # nothing else stands out
    plain = LongTermSpectrum(sr=sr)
    plain.feed(noise[None])
    assert find_tonal_peaks(*plain.result(), n=3) == []
