"""Unit tests of ids and manifest paths."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from audioprep.errors import AudioprepError, ItemError
from audioprep.manifests.ids import is_safe_id, make_id, slugify
from audioprep.manifests.records import read_manifest, resolve_audio, validate_record


@given(st.text(max_size=300))
def test_slugify_is_always_safe(text: str) -> None:
    assert is_safe_id(slugify(text))


@given(st.text(max_size=100), st.text(max_size=100))
def test_make_id_is_safe_and_stable(name: str, key: str) -> None:
    assert is_safe_id(make_id(name, key))
    assert make_id(name, key) == make_id(name, key)


def test_make_id_differs_by_key_and_keeps_words() -> None:
    a = make_id("Épisode 1: l'été", "/a/x.mp3")
    assert a.startswith("Episode_1_l_ete-")
    assert a != make_id("Épisode 1: l'été", "/b/x.mp3")


@pytest.mark.parametrize("bad", ["", "../x", "a/b", ".hidden", "a b", "x" * 201, None, 3])
def test_unsafe_ids(bad) -> None:
    assert not is_safe_id(bad)


@pytest.mark.parametrize(
    ("audio", "message"),
    [
        ("../../etc/passwd", "points outside"),
        ("/etc/passwd", "is absolute"),
        ("audio/../../x.wav", "points outside"),
        ("~/x.wav", "is absolute"),
    ],
)
def test_resolve_audio_refuses_escapes(tmp_path, audio, message) -> None:
    with pytest.raises(ItemError, match=message):
        resolve_audio(tmp_path, audio)


def test_resolve_audio_accepts_inside(tmp_path) -> None:
    assert resolve_audio(tmp_path, "audio/a.wav") == (tmp_path / "audio" / "a.wav").resolve()


def test_validate_record() -> None:
    good = {"id": "a", "audio": "audio/a.wav", "duration": 1.5, "sample_rate": 16000, "channels": 1}
    validate_record(good)
    with pytest.raises(ItemError, match="lacks required field"):
        validate_record({"id": "a"})
    with pytest.raises(ItemError, match="not filesystem-safe"):
        validate_record({**good, "id": "../a"})
    with pytest.raises(ItemError, match="must be a number"):
        validate_record({**good, "duration": "long"})


def test_read_manifest_streams_and_reports_bad_lines(tmp_path) -> None:
    with pytest.raises(AudioprepError, match="no manifest.jsonl"):
        list(read_manifest(tmp_path))
    (tmp_path / "manifest.jsonl").write_text(json.dumps({"id": "a"}) + "\n\n{oops\n")
    it = read_manifest(tmp_path)
    assert next(it) == {"id": "a"}
    with pytest.raises(AudioprepError, match="line 3 is not valid JSON"):
        next(it)
