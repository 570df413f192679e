"""Unit tests of the speaker-embedding arithmetic."""

from __future__ import annotations

import numpy as np
import pytest

from audioprep.dsp.speakers import (
    BIMODAL_SEPARATION,
    auto_threshold,
    centroid,
    dominant_voice,
    similarity,
    unit,
)


def voices(rng, center, n, spread=0.05):
    return unit(center + spread * rng.standard_normal((n, len(center))))


def test_centroid_and_similarity() -> None:
    x = np.array([[1.0, 0, 0], [0, 2.0, 0]])
    assert np.allclose(centroid(x), [2**-0.5, 2**-0.5, 0])
    assert np.allclose(similarity(x, np.array([1.0, 0, 0])), [1.0, 0.0])


def test_dominant_voice_is_the_largest_group() -> None:
    rng = np.random.default_rng(0)
    host, guest1, guest2 = unit(rng.standard_normal((3, 64)))
    embs = np.vstack([voices(rng, host, 10), voices(rng, guest1, 3), voices(rng, guest2, 2)])
    voice, size = dominant_voice(embs, threshold=0.6)
    assert size == 10
    scores = similarity(embs, voice)
    assert scores[:10].min() > scores[10:].max()


def test_auto_threshold_finds_the_valley_and_says_when_there_is_none() -> None:
    rng = np.random.default_rng(1)
    two = np.concatenate([rng.normal(0.55, 0.05, 40), rng.normal(0.88, 0.04, 12)])
    t, d = auto_threshold(two)
    assert 0.65 < t < 0.8 and d > BIMODAL_SEPARATION
    assert auto_threshold(rng.normal(0.6, 0.1, 200))[1] < BIMODAL_SEPARATION
    assert auto_threshold(rng.uniform(0.2, 0.9, 200))[1] < BIMODAL_SEPARATION
    t, d = auto_threshold(np.array([0.5, 0.9]))
    assert np.isnan(t) and d == 0.0
    assert auto_threshold(np.array([0.1, 0.1, 0.9, 0.9]))[0] == pytest.approx(0.5)


def test_change_point_from_running_sums_equals_the_direct_computation() -> None:
    from audioprep.dsp.speakers import change_point

    rng = np.random.default_rng(3)
    a, b = unit(rng.standard_normal((2, 32)))
    x = np.vstack([voices(rng, a, 7, 0.08), voices(rng, b, 5, 0.08)])
    k, sim, pos = change_point(x, min_windows=1)
    direct = [float(centroid(x[: j - 1]) @ centroid(x[j + 1 :])) for j in range(2, len(x) - 1)]
    assert sim == pytest.approx(min(direct)) and k == 2 + int(np.argmin(direct))
    assert k in (7, 8) and 6.0 <= pos <= 7.5  # the change: between windows 6 and 7


def test_the_target_rendered_another_way_joins_it_and_is_no_impostor() -> None:
    """Three renderings of the host (a shift each, as a codec or bed would make), guests far
    away: the renderings near the voice join, never serve in the cohort, and are kept."""
    from audioprep.dsp.speakers import cluster_voices, voice_decision

    rng = np.random.default_rng(4)
    host = unit(rng.standard_normal(64))
    shift = unit(rng.standard_normal((3, 64)))
    renders = [voices(rng, unit(host + 0.45 * s), 8, 0.03) for s in shift]
    guests = [voices(rng, g, 6, 0.03) for g in unit(rng.standard_normal((4, 64)))]
    x = np.vstack(renders + guests)
    labels = cluster_voices(x, stop_similarity=0.8)
    r = voice_decision(x, host, labels, anchor=host, join=0.8, cohort_below=0.75)
    host_clusters = set(labels[:24].tolist())
    assert all(r["joined"][c] for c in host_clusters)
    assert not any(r["joined"][c] for c in set(labels[24:].tolist()))
    assert r["keep"][:24].all() and not r["keep"][24:].any()
    assert r["calibration"]["cohort"] == 24  # the guests, not the host's renderings


def test_join_renderings_joins_one_voice_through_two_channels_and_never_single_clips() -> None:
    from audioprep.dsp.speaker_clusters import cluster_corpus, join_renderings

    rng = np.random.default_rng(3)
    voice, other = rng.normal(size=64), rng.normal(size=64)
    channel = rng.normal(size=64) * 0.9  # a phone line: every clip through it shifts alike
    studio = [voice + rng.normal(scale=0.5, size=64) for _ in range(6)]
    phone = [voice + channel + rng.normal(scale=0.5, size=64) for _ in range(4)]
    guest = [other + rng.normal(scale=0.5, size=64) for _ in range(5)]
    singles = [rng.normal(size=64) for _ in range(6)]  # one clip each, all different voices
    x = np.array(studio + phone + guest + singles)
    labels = np.array([0] * 6 + [1] * 4 + [2] * 5 + list(range(3, 9)))
    joined, merges = join_renderings(x, labels, join=0.7)
    assert merges == 1
    assert len(set(joined[:10].tolist())) == 1  # the voice, both channels
    assert len(set(joined[10:15].tolist())) == 1 and joined[10] != joined[0]  # the guest apart
    assert len(set(joined[15:].tolist())) == 6  # single clips never join this way
    # cluster_corpus with a join records how many it made
    _, _, info = cluster_corpus(x, stop_similarity=0.6, join=0.7)
    assert info["joined"] >= 0 and info["speakers"] >= 3
