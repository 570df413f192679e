"""The CAM++ speaker engine on real LibriSpeech voices: it tells voices apart, its windows are
the ones the turn detection expects, and a missing or damaged weights file is one sentence."""

from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np
import pytest

from audioprep.engines import base as engines
from audioprep.engines.speaker import campplus
from audioprep.engines.speaker.voiced import decode, voiced, window_starts
from audioprep.errors import UsageError
from audioprep.testing import LIBRI, require_shared


@pytest.fixture(scope="module")
def engine() -> campplus.CampplusEngine:
    require_shared()
    try:
        campplus.find_weights(None)
    except UsageError as exc:
        pytest.skip(f"CAM++ weights not installed (make setup): {exc}")
    return engines.load("speaker", "campplus", engines.Settings(threads=1))


@pytest.mark.slow
def test_same_voice_scores_above_every_other_voice(engine: campplus.CampplusEngine) -> None:
    voices = {s: sorted((LIBRI / s).glob("*.flac"))[:3] for s in ("1688", "1998", "2033", "2414")}
    wavs, who = [], []
    for spk, files in voices.items():
        for f in files:
            wavs.append(voiced(decode(f))[0])
            who.append(spk)
    emb = np.array([e for e, _ in engine.embed_many(wavs)])
    assert emb.shape == (12, 192)
    assert np.allclose(np.linalg.norm(emb, axis=1), 1.0, atol=1e-5)
    s = emb @ emb.T
    pairs = list(itertools.combinations(range(12), 2))
    same = [s[i, j] for i, j in pairs if who[i] == who[j]]
    other = [s[i, j] for i, j in pairs if who[i] != who[j]]
    # measured: one voice 0.66-0.96, two voices at most 0.59 (clean test-other)
    assert min(same) > max(other)
    assert min(same) > campplus.SCALE.fixed > max(other)


@pytest.mark.slow
def test_partials_are_the_turn_windows_and_batching_changes_nothing(
    engine: campplus.CampplusEngine,
) -> None:
    wav = voiced(decode(next(iter(sorted((LIBRI / "2609").glob("*.flac"))))))[0]
    short = wav[:8000]  # half a second: under one window, still embedded
    together = engine.embed_many([wav, short], batch_windows=3)
    alone = [engine.embed_many([w])[0] for w in (wav, short)]
    for (e1, p1), (e2, p2), w in zip(together, alone, [wav, short], strict=True):
        assert len(p1) == len(window_starts(len(w)))
        assert np.allclose(e1, e2, atol=1e-5) and np.allclose(p1, p2, atol=1e-5)
    assert engine.embed_many([]) == []


def test_missing_or_damaged_weights_are_one_sentence(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr(campplus, "setup_dir", lambda: tmp_path / "none")
    with pytest.raises(UsageError) as missing:
        engines.engine_class("speaker", "campplus").check(engines.Settings(model_dir=tmp_path))
    text = str(missing.value)
    assert "make setup" in text and "--engine resemblyzer" in text and "\n" not in text
    bad = tmp_path / campplus.FOLDER / campplus.FILE
    bad.parent.mkdir(parents=True)
    bad.write_bytes(b"not a torch file" * 100)
    with pytest.raises(UsageError, match="is not CAM\\+\\+'s weights"):
        engines.load("speaker", "campplus", engines.Settings(model_dir=tmp_path))
