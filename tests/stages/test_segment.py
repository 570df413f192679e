"""segment with the real inaSpeechSegmenter and the real model from ../shared/models."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from audioprep.testing import (
    DATA,
    LIBRI,
    MODELS,
    MUSANMIX,
    cli,
    ffmpeg,
    frame_labels,
    read_jsonl,
    read_reference_csv,
    require_shared,
)

REFERENCE = DATA / "musan-mix" / "musanmix-smn-gender.csv"


@pytest.fixture(scope="module")
def engine():
    require_shared()
    from audioprep.engines.segment.ina import InaEngine

    return InaEngine(model_dir=MODELS, threads=2)


def as_triples(segments):
    return [(s["label"], s["start"], s["end"]) for s in segments]


@pytest.mark.slow
def test_windowed_engine_equals_the_package_on_the_whole_file(engine) -> None:
    whole = [(lab, round(a, 2), round(b, 2)) for lab, a, b in engine.segmenter(str(MUSANMIX))]
    for window in (300.0, 10.0, 3.3):
        assert engine.segment(MUSANMIX, window_s=window) == whole


@pytest.fixture(scope="module")
def segmented(tmp_path_factory) -> Path:
    """musanmix, silence2sec, a music-only cut, a 0.5 s speech clip, through the CLI."""
    require_shared()
    root = tmp_path_factory.mktemp("seg")
    src = root / "src"
    src.mkdir()
    ffmpeg("-i", str(MUSANMIX), "-c", "copy", str(src / "musanmix.wav"))
    ffmpeg(
        "-i", str(DATA / "musan-mix" / "silence2sec.wav"), "-c", "copy", str(src / "silence.wav")
    )
    ffmpeg("-i", str(MUSANMIX), "-t", "20", str(src / "music only.wav"))
    flac = sorted((LIBRI / "1688").glob("*.flac"))[0]
    ffmpeg("-i", str(flac), "-ss", "1", "-t", "0.5", str(src / "tiny.wav"))
    cli("ingest", src, root / "raw", "-q")
    proc = cli("segment", root / "raw", root / "seg", "-q", "-j", "1")
    assert "segment: 4 ok of 4 items" in proc.stderr
    return root / "seg"


def by_name(directory: Path) -> dict[str, dict]:
    return {Path(r["source"]["path"]).stem: r for r in read_jsonl(directory / "manifest.jsonl")}


@pytest.mark.slow
def test_musanmix_agrees_with_the_reference_csv(segmented) -> None:
    rec = by_name(segmented)["musanmix"]
    n = int(rec["duration"] * 100)
    ours = frame_labels(as_triples(rec["segments"]), n)
    ref = frame_labels(read_reference_csv(REFERENCE), n)
    agreement = np.mean([a == b for a, b in zip(ours, ref, strict=True)])
    assert agreement >= 0.995, agreement
    assert rec["source"]["comment"] == 1
    assert rec["speech_seconds"] == pytest.approx(9.42, abs=0.1)
    assert sum(rec["label_seconds"].values()) == pytest.approx(rec["duration"], abs=0.05)
    # the audio is passed on unchanged
    assert (segmented / rec["audio"]).stat().st_ino == Path(rec["source"]["path"]).stat().st_ino


@pytest.mark.slow
def test_silence_music_and_tiny_inputs_are_sensible(segmented) -> None:
    items = by_name(segmented)
    silence = items["silence"]
    assert as_triples(silence["segments"]) == [("noEnergy", 0.0, 1.98)]
    assert silence["source"]["comment"] == 0 and silence["speech_seconds"] == 0
    music = items["music only"]
    assert music["source"]["comment"] == 0
    assert music["label_seconds"].get("music", 0) >= 19
    tiny = items["tiny"]
    assert tiny["duration"] == pytest.approx(0.5, abs=0.01)
    assert all(s["end"] <= 0.5 + 1e-6 for s in tiny["segments"])


@pytest.mark.slow
def test_fifty_minutes_in_windows_agree_with_the_tiled_reference(tmp_path, engine) -> None:
    """musanmix repeated 40 times (49.7 min), in 5-minute windows, against the reference tiled."""
    long_wav = tmp_path / "long.wav"
    ffmpeg("-stream_loop", "39", "-i", str(MUSANMIX), "-c", "copy", str(long_wav))
    duration = sf.info(str(long_wav)).frames / 16000
    assert duration == pytest.approx(40 * 74.522937, abs=0.01)
    ours = engine.segment(long_wav, window_s=300.0)
    one = sf.info(str(MUSANMIX)).frames / 16000
    tiled = [
        (lab, a + k * one, b + k * one)
        for k in range(40)
        for lab, a, b in read_reference_csv(REFERENCE)
    ]
    n = int(duration * 100)
    got = frame_labels(
        [(("speech" if lab in ("male", "female") else lab), a, b) for lab, a, b in ours], n
    )
    ref = frame_labels(tiled, n)
    agreement = np.mean([a == b for a, b in zip(got, ref, strict=True)])
    assert agreement >= 0.99, agreement


@pytest.mark.slow
def test_a_corrupt_file_fails_alone(segmented, tmp_path) -> None:
    import json
    import shutil

    bad = tmp_path / "in"
    shutil.copytree(segmented.parent / "raw", bad)
    (bad / "audio" / "junk.wav").write_bytes(b"RIFF\x00\x00\x00\x00WAVEnot really" * 8)
    with open(bad / "manifest.jsonl", "a") as fh:
        fh.write(
            json.dumps(
                {
                    "id": "junk",
                    "audio": "audio/junk.wav",
                    "duration": 3.0,
                    "sample_rate": 16000,
                    "channels": 1,
                }
            )
            + "\n"
        )
    proc = cli("segment", bad, tmp_path / "out", "--engine", "silero", "-q", "-j", "1", check=False)
    assert proc.returncode == 1
    errors = read_jsonl(tmp_path / "out" / "errors.jsonl")
    assert [e["id"] for e in errors] == ["junk"]
    assert errors[0]["reason"].startswith("ffmpeg could not decode it")
    assert len(read_jsonl(tmp_path / "out" / "manifest.jsonl")) == 4


@pytest.mark.slow
def test_missing_model_is_one_clear_sentence(tmp_path, segmented, monkeypatch) -> None:
    empty = tmp_path / "models"
    empty.mkdir()
    proc = cli(
        "segment", segmented, tmp_path / "out", "--model-dir", empty, "-q", "-j", "1", check=False
    )
    assert proc.returncode == 3
    last = proc.stderr.strip().splitlines()[-1]
    assert "keras_speech_music_noise_cnn.hdf5" in last and str(empty) in last
    assert "Traceback" not in proc.stderr
    assert not (tmp_path / "out" / "stage.json").exists()


def test_models_command_lists_what_is_present() -> None:
    require_shared()
    out = cli("models").stdout
    assert f"model directory: {MODELS}" in out
    assert "present  inaSpeechSegmenter/keras_speech_music_noise_cnn.hdf5" in out
    assert "missing  inaSpeechSegmenter/keras_male_female_cnn.hdf5" in out
    assert "present  spleeter/2stems" in out


@pytest.fixture(scope="module")
def silero():
    from audioprep.engines.segment.silero import SileroEngine

    return SileroEngine()


@pytest.mark.slow
def test_silero_streamed_equals_the_package_on_the_whole_tensor(silero) -> None:
    require_shared()
    import torch
    from silero_vad import get_speech_timestamps

    from audioprep.engines.segment.silero import fill_gaps

    y, _ = sf.read(str(MUSANMIX), dtype="int16")
    whole = get_speech_timestamps(
        torch.from_numpy(y.astype(np.float32) / 32768), silero.model, sampling_rate=16000
    )
    expected = fill_gaps([(s["start"] / 16000, s["end"] / 16000) for s in whole], len(y) / 16000)
    for window in (300.0, 7.3):
        assert silero.segment(MUSANMIX, window_s=window) == expected


@pytest.mark.slow
def test_silero_agrees_with_the_reference_on_speech(silero) -> None:
    require_shared()
    segs = silero.segment(MUSANMIX)
    n = int(74.52 * 100)
    ours = frame_labels(segs, n)
    ref = frame_labels(read_reference_csv(REFERENCE), n)
    agreement = np.mean(
        [(a == "speech") == (b == "speech") for a, b in zip(ours, ref, strict=True)]
    )
    assert agreement >= 0.95, agreement  # measured here: 0.981


@pytest.mark.slow
def test_silero_stage_through_the_cli(segmented, tmp_path) -> None:
    raw = segmented.parent / "raw"
    proc = cli("segment", raw, tmp_path / "s", "--engine", "silero", "-q", "-j", "2")
    assert "4 ok of 4 items" in proc.stderr
    items = by_name(tmp_path / "s")
    assert items["musanmix"]["source"]["comment"] == 1
    assert items["silence"]["source"]["comment"] == 0
    assert {s["label"] for s in items["musanmix"]["segments"]} == {"speech", "nonspeech"}
    stage = __import__("json").loads((tmp_path / "s" / "stage.json").read_text())
    assert stage["params"]["engine"] == "silero" and "silero-vad" in stage["tools"]
    proc = cli(
        "segment", raw, tmp_path / "x", "--engine", "silero", "--device", "cuda", check=False
    )
    assert proc.returncode == 2
