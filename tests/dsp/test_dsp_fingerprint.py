"""Properties of the landmark fingerprint, the hash index and the repeat/duplicate maths."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from audioprep.dsp.dedupe import better, components, coverage
from audioprep.dsp.fingerprint import (
    DT_MAX,
    DT_MIN,
    HASH_BITS,
    HOP,
    SR,
    HashIndex,
    analyse,
    hash_dt,
    n_frames,
    vote,
)
from audioprep.stages.repeats import merge_ranges

FAST = settings(max_examples=15, deadline=None)


def signal(seed: int, seconds: float = 3.0) -> np.ndarray:
    """Noise with a random loudness envelope (10 steps a second) and a few tones: peaky."""
    rng = np.random.default_rng(seed)
    n = int(seconds * SR)
    env = np.repeat(rng.random(int(seconds * 10) + 1), SR // 10)[:n]
    t = np.arange(n) / SR
    tones = sum(
        np.sin(2 * np.pi * rng.uniform(200, 3500) * t)
        * (rng.random(n // 1000 + 1).repeat(1000)[:n] > 0.6)
        for _ in range(4)
    )
    return ((rng.standard_normal(n) * 0.3 + tones) * env * 0.2).astype(np.float32)


def pairs(fp):
    return set(zip(fp["hashes"].tolist(), fp["times"].tolist(), strict=True))


@FAST
@given(st.integers(0, 10_000))
def test_shapes_dtypes_and_ranges(seed) -> None:
    x = signal(seed)
    fp = analyse(x)
    assert fp["hashes"].dtype == np.uint32 and fp["times"].dtype == np.int32
    assert fp["hashes"].shape == fp["times"].shape and len(fp["hashes"]) > 0
    assert fp["features"].shape == (n_frames(len(x)), 24) and fp["energy"].shape == (
        n_frames(len(x)),
    )
    assert int(fp["hashes"].max()) < 1 << HASH_BITS
    assert np.all(np.diff(fp["times"]) >= 0)
    dt = hash_dt(fp["hashes"])
    assert dt.min() >= DT_MIN and dt.max() <= DT_MAX
    assert fp["times"].max() + DT_MAX < n_frames(len(x)) + DT_MAX


@FAST
@given(st.integers(0, 10_000), st.floats(0.05, 8.0))
def test_gain_does_not_change_the_hashes(seed, gain) -> None:
    x = signal(seed)
    a, b = pairs(analyse(x)), pairs(analyse(x * np.float32(gain)))
    assert len(a & b) >= 0.97 * max(len(a), len(b))


@FAST
@given(st.integers(0, 10_000), st.integers(1, 120))
def test_a_cut_start_shifts_the_times_by_whole_frames(seed, frames) -> None:
    x = signal(seed, 4.0)
    a = pairs(analyse(x))
    b = {(h, t + frames) for h, t in pairs(analyse(x[frames * HOP :]))}
    away = {(h, t) for h, t in b if t >= frames + 62}  # a second or more after the cut
    assert len(a & away) >= 0.95 * len(away)
    # the first second after the cut loses the peaks whose neighbourhood the cut removed:
    # hypothesis found 0.798 (seed 1879, 99 frames), so the bound on the whole set is 0.75
    assert len(a & b) >= 0.75 * len(b)
    index = HashIndex.build(
        [(np.array([h for h, _ in a], np.uint32), np.array([t for _, t in a], np.int32))]
    )
    q = analyse(x[frames * HOP :])
    v = index.offsets(q["hashes"], q["times"])
    assert v["item"][0] == 0 and v["offset"][0] == frames


def test_silence_and_empty_input_give_no_hashes() -> None:
    for x in (np.zeros(SR * 2, np.float32), np.zeros(0, np.float32)):
        fp = analyse(x)
        assert len(fp["hashes"]) == 0 and len(fp["times"]) == 0


@FAST
@given(
    st.lists(
        st.lists(st.tuples(st.integers(0, 50), st.integers(0, 300)), max_size=40),
        min_size=1,
        max_size=5,
    ),
    st.lists(st.tuples(st.integers(0, 50), st.integers(0, 300)), max_size=30),
)
def test_index_postings_equal_brute_force(items, query) -> None:
    fps = [
        (np.array([h for h, _ in it], np.uint32), np.array([t for _, t in it], np.int32))
        for it in items
    ]
    index = HashIndex.build(fps)
    qh = np.array([h for h, _ in query], np.uint32)
    qt = np.array([t for _, t in query], np.int32)
    p = index.postings(qh, qt)
    got = sorted(zip(p["item"].tolist(), p["offset"].tolist(), p["qindex"].tolist(), strict=True))
    want = sorted(
        (k, t2 - t1, qi)
        for qi, (h1, t1) in enumerate(query)
        for k, it in enumerate(items)
        for h2, t2 in it
        if h1 == h2
    )
    assert got == want


@FAST
@given(st.lists(st.tuples(st.integers(0, 3), st.integers(-20, 20)), min_size=1, max_size=80))
def test_vote_peak_counts_match_a_histogram(matches) -> None:
    item = np.array([m[0] for m in matches])
    off = np.array([m[1] for m in matches])
    v = vote(item, off, min_count=1, tolerance=0, peaks_per_item=100)
    for it, o, c in zip(v["item"].tolist(), v["offset"].tolist(), v["count"].tolist(), strict=True):
        assert c == sum(1 for m in matches if m == (it, o))
    best = max(set(matches), key=lambda m: (matches.count(m), -m[1]))
    assert (best[0], best[1]) in set(zip(v["item"].tolist(), v["offset"].tolist(), strict=True))


@FAST
@given(st.lists(st.tuples(st.floats(0, 100), st.floats(0, 20)), max_size=12), st.integers(1, 48000))
def test_merge_ranges_sorted_disjoint_and_clipped(spans, sr) -> None:
    n = 60 * sr
    ranges = merge_ranges([(s, s + d) for s, d in spans], sr=sr, n=n)
    for (a, b), (c, _d) in zip(ranges, ranges[1:], strict=False):
        assert a < b < c
    assert all(0 <= a < b <= n for a, b in ranges)


@FAST
@given(
    st.lists(st.integers(0, 500), max_size=60),
    st.lists(st.integers(0, 500), max_size=60),
    st.integers(0, 250),
    st.integers(0, 250),
)
def test_coverage_is_a_share(times, matched, first, length) -> None:
    c = coverage(
        np.array(times, np.int64), np.array(matched, np.int64), first=first, last=first + length
    )
    assert 0.0 <= c <= 1.0


def test_keep_rules() -> None:
    base = {
        "duration": 10.0,
        "lossless": True,
        "hf_db": -20.0,
        "rms_db": -20.0,
        "peak": 0.5,
        "score": None,
        "order": 0,
    }
    assert better({**base, "order": 1, "score": 4.0}, {**base, "score": 3.0})
    assert not better({**base, "order": 1, "lossless": False}, base)
    assert better({**base, "order": 1, "rms_db": -14.0}, base)  # the -6 dB copy loses
    assert not better({**base, "order": 1, "rms_db": -14.0, "peak": 1.0}, base)  # clipped
    assert better({**base, "order": 1, "duration": 30.0, "score": 1.0}, {**base, "score": 5.0})
    assert components(4, [(0, 1), (2, 3), (1, 0)]) == [[0, 1], [2, 3]]


def test_batched_search_finds_the_same_pairs() -> None:
    from audioprep.dsp.dedupe import find_pairs

    base = [signal(s, 3.0) for s in range(5)]
    items = [*base, 0.5 * base[1], base[3][40 * HOP :], np.concatenate([base[0], base[2]])]
    fps = [analyse(x) for x in items]
    frames = np.array([len(f["energy"]) for f in fps])
    want = {(1, 5), (3, 6), (0, 7), (2, 7)}
    for batch in (None, 1, 2, 3):
        assert set(find_pairs(fps, frames, batch=batch)) == want, batch
