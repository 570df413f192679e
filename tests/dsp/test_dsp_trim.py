"""Unit tests of the pure trim arithmetic."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from audioprep.dsp.trim import trim, trim_bounds

seconds = st.floats(min_value=0, max_value=100, allow_nan=False)


@given(st.integers(0, 10**7), st.sampled_from([8000, 16000, 22050, 44100, 48000]), seconds, seconds)
def test_bounds_partition_the_signal(n, sr, head, tail) -> None:
    start, stop = trim_bounds(n, sr=sr, head=head, tail=tail)
    assert 0 <= start <= stop <= n
    # head, kept and tail parts add up to the whole signal
    assert start + (stop - start) + (n - stop) == n
    if round(head * sr) + round(tail * sr) < n:
        assert start == round(head * sr)
        assert n - stop == round(tail * sr)
    else:
        assert start == stop


@given(st.integers(1, 5000), seconds, seconds)
def test_trim_equals_the_slice(n, head, tail) -> None:
    y = np.arange(2 * n).reshape(2, n)  # (channels, time)
    out = trim(y, sr=100, head=head, tail=tail)
    start, stop = trim_bounds(n, sr=100, head=head, tail=tail)
    assert out.shape == (2, stop - start)
    np.testing.assert_array_equal(out, y[:, start:stop])


def test_trim_examples() -> None:
    assert trim_bounds(160000, sr=16000, head=5, tail=1) == (80000, 144000)
    np.testing.assert_array_equal(trim(np.arange(10), sr=2, head=1, tail=1.5), [2, 3, 4, 5, 6])


def test_trim_rejects_negative() -> None:
    with pytest.raises(ValueError):
        trim_bounds(10, sr=10, head=-1)
