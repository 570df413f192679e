"""Unit tests of the slicing arithmetic (properties with hypothesis)."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from audioprep.dsp.slicing import (
    Span,
    pad_span,
    plan_chunks,
    quietest_point,
    select_and_merge,
    split_long,
    to_samples,
)

secs = st.floats(min_value=0, max_value=3600, allow_nan=False)


def test_select_and_merge() -> None:
    segs = [
        Span(0, 2, "male"),
        Span(2, 2.3, "noEnergy"),
        Span(2.3, 5, "male"),
        Span(5, 6, "female"),
        Span(6.1, 7, "female"),
        Span(9, 10, "music"),
    ]
    assert select_and_merge(segs, labels=["male", "female"], merge_gap=0.0) == [
        Span(0, 2, "male"),
        Span(2.3, 5, "male"),
        Span(5, 6, "female"),
        Span(6.1, 7, "female"),
    ]
    assert select_and_merge(segs, labels=["male", "female"], merge_gap=0.3) == [
        Span(0, 5, "male"),
        Span(5, 7, "female"),
    ]
    assert select_and_merge(segs, labels=["speech"]) == []
    assert len(select_and_merge(segs, labels=None)) == 6


@given(
    st.floats(0, 1000), st.floats(0.1, 500), st.floats(0.5, 60), st.floats(0, 20), st.floats(0, 10)
)
def test_split_long_tiles_the_span_and_honours_max(start, length, max_d, search, min_frac) -> None:
    span = Span(start, start + length, "speech")
    min_d = min(min_frac, max_d / 2)

    def energy(t0, t1):  # a noisy energy curve with a few quiet frames
        n = int((t1 - t0) / 0.01) + 1
        rng = np.random.default_rng(int(t0 * 100) % 2**32)
        return rng.random(n), 0.01, t0

    pieces = split_long(span, max_duration=max_d, min_duration=min_d, energy=energy, search=search)
    assert pieces[0].start == span.start and pieces[-1].end == span.end
    for a, b in zip(pieces, pieces[1:], strict=False):
        assert a.end == b.start
    assert all(p.duration <= max_d + 1e-6 for p in pieces)
    for p in pieces[:-1]:  # every cut lies in the search window before the limit
        assert p.duration >= max(max_d - search, max_d / 2) - 1e-6 - 0.01
        assert p.duration >= min_d - 1e-6
    assert sum(p.duration for p in pieces) == pytest.approx(length)


def test_split_long_cuts_at_the_quietest_point() -> None:
    energy_curve = np.ones(2000)
    energy_curve[1150] = 0.0  # a pause at 11.5 s
    pieces = split_long(
        Span(0, 20, "speech"),
        max_duration=12,
        search=3,
        energy=lambda t0, t1: (
            energy_curve[int(t0 * 100) : int(t1 * 100) + 1],
            0.01,
            int(t0 * 100) / 100,
        ),
    )
    assert [round(p.end, 2) for p in pieces] == [11.5, 20.0]
    # without energy information the cut is at the limit
    assert [p.end for p in split_long(Span(0, 20), max_duration=12)] == [12, 20]


def test_quietest_point_prefers_the_latest_minimum() -> None:
    assert quietest_point(np.array([1, 0, 1, 0, 1.0]), hop=1.0, lo=0, hi=4) == 3.0
    assert quietest_point(np.array([1, 0, 1, 0, 1.0]), hop=1.0, lo=0, hi=2) == 1.0


@given(secs, secs, st.floats(0, 5), st.floats(0.01, 7200))
def test_pad_never_runs_past_the_parent(a, b, pad, total) -> None:
    start, end = sorted((min(a, total), min(b, total)))
    padded = pad_span(Span(start, end), pad=pad, total=total)
    assert 0 <= padded.start <= start and end <= padded.end <= total


@given(st.floats(0.01, 7200), st.floats(0.5, 120), st.booleans())
def test_chunks_tile_the_parent(total, chunk, drop_last) -> None:
    spans, dropped = plan_chunks(total, chunk=chunk, drop_last=drop_last)
    pieces = spans + ([dropped] if dropped else [])
    assert pieces[0].start == 0 and pieces[-1].end == total
    for a, b in zip(pieces, pieces[1:], strict=False):
        assert a.end == b.start
    assert all(s.duration <= chunk + 1e-9 for s in pieces)
    assert all(s.duration == pytest.approx(chunk) for s in spans[:-1])
    if drop_last:
        assert all(s.duration == pytest.approx(chunk) for s in spans)


@given(st.integers(1, 10**7), st.sampled_from([16000, 22050, 44100]), secs, secs)
def test_to_samples_stays_inside(n, sr, a, b) -> None:
    start, end = sorted((a, b))
    assume(end > start)
    lo, hi = to_samples(Span(start, end), sr=sr, n=n)
    assert 0 <= lo <= hi <= n
