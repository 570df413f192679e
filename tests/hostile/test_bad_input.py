"""Bad input beside good input: each bad item lands in errors.jsonl, good ones finish."""

from __future__ import annotations

import json
import shutil

import pytest

from audioprep.testing import LIBRI, MUSANMIX, SONG, cli, read_jsonl, require_shared

pytestmark = pytest.mark.slow  # real audio through the CLI, or models


def test_bad_files_fail_clearly_and_good_files_finish(tmp_path) -> None:
    require_shared()
    src = tmp_path / "batch"
    src.mkdir()
    shutil.copy(SONG, src / "good song.mp3")
    shutil.copy(MUSANMIX, src / "good.wav")
    shutil.copy(sorted((LIBRI / "3005").glob("*.flac"))[0], src / "good.flac")
    (src / "empty.wav").write_bytes(b"")
    data = SONG.read_bytes()
    (src / "truncated.mp3").write_bytes(data[: len(data) // 2])
    (src / "notes.wav").write_text("these are my notes, not audio\n" * 20)
    (src / "folder.mp3").mkdir()
    (src / "readme.txt").write_text("ignored: not a media extension")

    raw, wav, trimmed = tmp_path / "raw", tmp_path / "wav", tmp_path / "trim"
    proc = cli("ingest", src, raw, "-q", check=False)
    assert proc.returncode == 1, proc.stderr
    assert "3 ok, 4 failed" in proc.stderr
    errors = {e["id"].rsplit("-", 1)[0]: e["reason"] for e in read_jsonl(raw / "errors.jsonl")}
    assert errors == {
        "empty": "file is empty (0 bytes)",
        "truncated": errors["truncated"],
        "notes": errors["notes"],
        "folder": "is a directory, not an audio file",
    }
    assert errors["truncated"].startswith("truncated")
    assert errors["notes"].startswith("not a readable media file")
    assert len(read_jsonl(raw / "manifest.jsonl")) == 3
    assert json.loads((raw / "stage.json").read_text())["items_failed"] == 4

    cli("convert", raw, wav, "--sample-rate", "16000", "--channels", "1", "-q")
    cli("trim", wav, trimmed, "--head", "0.5", "-q")
    assert len(read_jsonl(trimmed / "manifest.jsonl")) == 3


def test_convert_reports_corrupt_audio_that_a_hand_made_manifest_lets_through(tmp_path) -> None:
    require_shared()
    d = tmp_path / "hand"
    (d / "audio").mkdir(parents=True)
    shutil.copy(SONG, d / "audio" / "ok.mp3")
    data = SONG.read_bytes()
    (d / "audio" / "cut.mp3").write_bytes(data[: len(data) // 3])
    (d / "audio" / "junk.wav").write_bytes(b"RIFF\x00\x00\x00\x00WAVEjunkjunk" * 10)
    recs = [
        {
            "id": "ok",
            "audio": "audio/ok.mp3",
            "duration": 10.92,
            "sample_rate": 44100,
            "channels": 2,
        },
        {
            "id": "cut",
            "audio": "audio/cut.mp3",
            "duration": 10.92,
            "sample_rate": 44100,
            "channels": 2,
        },
        {
            "id": "junk",
            "audio": "audio/junk.wav",
            "duration": 3,
            "sample_rate": 16000,
            "channels": 1,
        },
        {
            "id": "escape",
            "audio": "../../etc/passwd",
            "duration": 1,
            "sample_rate": 1,
            "channels": 1,
        },
    ]
    (d / "manifest.jsonl").write_text("".join(json.dumps(r) + "\n" for r in recs))
    out = tmp_path / "wav"
    proc = cli("convert", d, out, "-q", check=False)
    assert proc.returncode == 1
    errors = {e["id"]: e["reason"] for e in read_jsonl(out / "errors.jsonl")}
    assert set(errors) == {"cut", "junk", "escape"}
    assert errors["cut"].startswith("truncated or corrupt: decoded")
    assert errors["junk"].startswith("ffmpeg could not convert it")
    assert errors["escape"] == "audio path '../../etc/passwd' points outside the manifest directory"
    assert [r["id"] for r in read_jsonl(out / "manifest.jsonl")] == ["ok"]
    assert sorted(p.name for p in (out / "audio").iterdir()) == ["ok.wav"]
