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
