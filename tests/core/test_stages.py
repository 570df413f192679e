"""ingest, convert and trim on real audio from ../shared, checked from the written audio."""

from __future__ import annotations

import os
import shutil

import numpy as np
import pytest
import soundfile as sf

from audioprep.errors import UsageError
from audioprep.run.runner import run_stage
from audioprep.stages.convert import ConvertStage
from audioprep.stages.ingest import IngestStage
from audioprep.stages.trim import TrimStage
from audioprep.testing import LIBRI, SONG, ffmpeg, read_jsonl, require_shared


def ingest(sources, out, **kw):
    return run_stage(
        IngestStage(IngestStage.Params(sources=tuple(map(str, sources)))), out, progress=False, **kw
    )


@pytest.mark.slow
def test_ingest_probes_and_links_every_format(media_dir, tmp_path) -> None:
    out = tmp_path / "raw"
    summary = ingest([media_dir], out, jobs=2)
    assert summary.exit_code == 0
    records = read_jsonl(out / "manifest.jsonl")
    assert len(records) == 7
    by_name = {os.path.basename(r["source"]["path"]): r for r in records}
    assert set(by_name) == {
        "spoken 1688-142285-0000.flac",
        "spoken 1688-142285-0001.flac",
        "spoken 1688-142285-0002.flac",
        "song; rm -rf.mp3",
        "musanmix.wav",
        "talk video.mp4",
        "clip.webm",
    }
    song = by_name["song; rm -rf.mp3"]
    assert (song["sample_rate"], song["channels"]) == (44100, 2)
    assert song["duration"] == pytest.approx(10.92, abs=0.05)
    for name, rec in by_name.items():
        audio = out / rec["audio"]
        assert audio.is_file() and rec["audio"].startswith("audio/")
        # kept unchanged, hard-linked (same file system here)
        assert os.stat(audio).st_ino == os.stat(rec["source"]["path"]).st_ino
        if name.endswith((".flac", ".wav")):
            info = sf.info(str(audio))
            assert rec["duration"] == pytest.approx(info.frames / info.samplerate, abs=1e-3)
            assert rec["sample_rate"] == info.samplerate and rec["channels"] == info.channels
        assert rec["parent"] is None and rec["offset"] == 0.0


@pytest.mark.slow
def test_ingest_globs_and_single_files(media_dir, tmp_path) -> None:
    summary = ingest([f"{media_dir}/**/*.flac", media_dir / "musanmix.wav"], tmp_path / "g", jobs=1)
    assert summary.items_ok == 4
    with pytest.raises(UsageError, match="no such file"):
        ingest([tmp_path / "nope"], tmp_path / "x", jobs=1)


def test_ingest_copies_across_file_systems(tmp_path) -> None:
    require_shared()  # ../shared is read-only; /dev/shm is another file system where present
    if not os.path.isdir("/dev/shm"):
        pytest.skip("no /dev/shm")
    out = tmp_path / "raw"
    import tempfile

    with tempfile.TemporaryDirectory(dir="/dev/shm") as other:
        src = shutil.copy(SONG, other)
        if os.stat(other).st_dev == os.stat(tmp_path).st_dev:
            pytest.skip("/dev/shm is on the same file system here")
        ingest([src], out, jobs=1)
    rec = read_jsonl(out / "manifest.jsonl")[0]
    assert (out / rec["audio"]).read_bytes() == SONG.read_bytes()


@pytest.mark.slow
@pytest.mark.parametrize(
    ("fmt", "sample_format", "subtype"),
    [("wav", "s16", "PCM_16"), ("flac", "s24", "PCM_24"), ("wav", "f32", "FLOAT")],
)
def test_convert_rate_channels_format(media_dir, tmp_path, fmt, sample_format, subtype) -> None:
    raw = tmp_path / "raw"
    ingest([media_dir], raw, jobs=2)
    out = tmp_path / "conv"
    stage = ConvertStage(
        ConvertStage.Params(sample_rate=22050, channels=1, format=fmt, sample_format=sample_format)
    )
    summary = run_stage(stage, out, in_dir=raw, jobs=2, progress=False)
    assert summary.exit_code == 0 and summary.items_ok == 7
    raw_by_id = {r["id"]: r for r in read_jsonl(raw / "manifest.jsonl")}
    for rec in read_jsonl(out / "manifest.jsonl"):
        info = sf.info(str(out / rec["audio"]))
        assert rec["audio"].endswith(f".{fmt}")
        assert (info.samplerate, info.channels, info.subtype) == (22050, 1, subtype)
        assert rec["duration"] == pytest.approx(info.frames / 22050, abs=1e-6)
        # the converted audio lasts as long as the source (within one codec frame or so)
        assert rec["duration"] == pytest.approx(raw_by_id[rec["id"]]["duration"], abs=0.06)
        assert rec["source"] == raw_by_id[rec["id"]]["source"]  # fields passed on


def test_convert_keeps_rate_and_channels_by_default(tmp_path) -> None:
    require_shared()
    raw = tmp_path / "raw"
    ingest([SONG], raw, jobs=1)
    run_stage(ConvertStage(), tmp_path / "c", in_dir=raw, jobs=1, progress=False)
    rec = read_jsonl(tmp_path / "c" / "manifest.jsonl")[0]
    info = sf.info(str(tmp_path / "c" / rec["audio"]))
    assert (info.samplerate, info.channels) == (44100, 2)


def test_convert_rejects_bad_options_before_touching_files(tmp_path) -> None:
    for params in (
        {"format": "mp3"},
        {"format": "flac", "sample_format": "f32"},
        {"sample_rate": 10},
        {"channels": 0},
    ):
        with pytest.raises(UsageError):
            ConvertStage(ConvertStage.Params(**params)).check()


def test_trim_is_sample_accurate_and_streams(tmp_path) -> None:
    require_shared()
    raw = tmp_path / "raw"
    flac = sorted((LIBRI / "2609").glob("*.flac"))[0]
    ingest([flac], raw, jobs=1)
    out = tmp_path / "trim"
    run_stage(
        TrimStage(TrimStage.Params(head=1.25, tail=0.5)), out, in_dir=raw, jobs=1, progress=False
    )
    rec = read_jsonl(out / "manifest.jsonl")[0]
    original, sr = sf.read(str(flac), dtype="int16")
    trimmed, sr2 = sf.read(str(out / rec["audio"]), dtype="int16")
    assert sr2 == sr == 16000
    np.testing.assert_array_equal(trimmed, original[20000 : len(original) - 8000])
    assert rec["offset"] == 1.25 and rec["trim"] == {"head": 1.25, "tail": 0.5}
    assert rec["duration"] == pytest.approx(len(trimmed) / sr, abs=1e-6)


@pytest.mark.slow
def test_trim_long_file_in_blocks_equals_whole_read(tmp_path) -> None:
    """A file longer than several blocks trims to exactly the expected samples."""
    rng = np.random.default_rng(0)
    src = tmp_path / "long.wav"
    y = rng.integers(-20000, 20000, size=(16000 * 60, 2), dtype=np.int16)
    sf.write(src, y, 16000)
    raw = tmp_path / "raw"
    ingest([src], raw, jobs=1)
    out = tmp_path / "t"
    run_stage(
        TrimStage(TrimStage.Params(head=3.3, tail=7.1)), out, in_dir=raw, jobs=1, progress=False
    )
    rec = read_jsonl(out / "manifest.jsonl")[0]
    got, _ = sf.read(str(out / rec["audio"]), dtype="int16")
    np.testing.assert_array_equal(got, y[52800 : len(y) - 113600])


def test_trim_rejects_short_items_and_links_untouched(tmp_path) -> None:
    require_shared()
    raw = tmp_path / "raw"
    files = sorted((LIBRI / "1688").glob("*.flac"))[:4]
    ingest(files, raw, jobs=1)
    durations = {r["id"]: r["duration"] for r in read_jsonl(raw / "manifest.jsonl")}
    cut = sorted(durations.values())[1]  # the shortest two are rejected
    out = tmp_path / "t"
    summary = run_stage(
        TrimStage(TrimStage.Params(head=cut / 2, tail=cut / 2)),
        out,
        in_dir=raw,
        jobs=1,
        progress=False,
    )
    rejected = read_jsonl(out / "rejected.jsonl")
    assert summary.items_rejected == 2 and len(rejected) == 2
    assert all("not longer than head + tail" in r["reason"] for r in rejected)
    assert len(read_jsonl(out / "manifest.jsonl")) == 2
    # head = tail = 0 keeps the audio as it is: hard-linked
    zero = tmp_path / "z"
    run_stage(TrimStage(), zero, in_dir=raw, jobs=1, progress=False)
    for rec in read_jsonl(zero / "manifest.jsonl"):
        assert os.stat(zero / rec["audio"]).st_ino == os.stat(raw / rec["audio"]).st_ino


def test_trim_reads_containers_libsndfile_cannot(tmp_path) -> None:
    require_shared()
    flac = sorted((LIBRI / "1998").glob("*.flac"))[0]
    m4a = tmp_path / "speech.m4a"
    ffmpeg("-i", str(flac), "-c:a", "aac", str(m4a))
    raw = tmp_path / "raw"
    ingest([m4a], raw, jobs=1)
    out = tmp_path / "t"
    run_stage(
        TrimStage(TrimStage.Params(head=1.0, tail=1.0)), out, in_dir=raw, jobs=1, progress=False
    )
    rec = read_jsonl(out / "manifest.jsonl")[0]
    info = sf.info(str(out / rec["audio"]))
    assert info.samplerate == 16000
    expected = sf.info(str(flac)).frames - 32000
    assert abs(info.frames - expected) < 2048  # aac priming/padding
