"""loudness: targets met under the true-peak ceiling, streamed = whole-file, bad input named."""

from __future__ import annotations

import tracemalloc
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from scipy import signal

from audioprep.core.stage import ItemContext
from audioprep.run.runner import run_stage
from audioprep.stages.loudness import LoudnessStage
from audioprep.testing import LIBRI, arrays_manifest_dir, read_jsonl, require_shared

pyloudnorm = pytest.importorskip("pyloudnorm")


def manifest_dir(root: Path, files: dict[str, tuple[np.ndarray, int]], subtype="PCM_16") -> Path:
    """A manifest directory holding ``files`` (id -> (samples (n,) or (n, ch), rate))."""
    return arrays_manifest_dir(root, files, subtype=subtype)


def true_peak_db(x: np.ndarray) -> float:
    """The check's own 4x-oversampled peak, on the whole array."""
    y = signal.resample_poly(np.atleast_2d(x.T).T, 4, 1, axis=0)
    return 20 * np.log10(max(np.abs(y).max(), np.abs(x).max()))


def libri(name: str) -> tuple[np.ndarray, int]:
    x, sr = sf.read(str(next(LIBRI.glob(f"*/{name}.flac"))))
    return x, sr


def test_outputs_meet_the_target_and_never_pass_the_ceiling(tmp_path: Path) -> None:
    require_shared()
    quiet, sr = libri("1998-15444-0002")
    loud, _ = libri("2414-128291-0004")
    stereo = np.stack([loud, 0.5 * loud], axis=1) * 0.3
    # a very peaky item: quiet speech with one loud click, so the gain must be lowered
    peaky = quiet * 0.05
    peaky[5000:5004] = [0.9, -0.9, 0.9, -0.9]
    inp = manifest_dir(
        tmp_path / "in",
        {
            "quiet": (quiet * 0.1, sr),
            "loud": (loud, sr),
            "stereo": (stereo, sr),
            "peaky": (peaky, sr),
        },
    )
    summary = run_stage(LoudnessStage(), tmp_path / "out", in_dir=inp, jobs=1)
    assert summary.exit_code == 0
    records = {r["id"]: r for r in read_jsonl(tmp_path / "out" / "manifest.jsonl")}
    assert set(records) == {"quiet", "loud", "stereo", "peaky"}
    for item_id, rec in records.items():
        y, ysr = sf.read(str(tmp_path / "out" / rec["audio"]))
        lufs = pyloudnorm.Meter(ysr).integrated_loudness(y)
        tp = true_peak_db(y)
        info = rec["loudness"]
        assert tp <= -1.0 + 1e-6, (item_id, tp)
        assert abs(info["output_lufs"] - lufs) < 0.05
        assert abs(info["output_true_peak_db"] - tp) < 0.05
        if info["limited"]:
            assert item_id == "peaky"
            assert info["gain_db"] < info["wanted_gain_db"]
            assert tp > -1.1  # lowered just enough to meet the ceiling
            assert lufs < -23.5
        else:
            assert abs(lufs - -23.0) < 0.5, (item_id, lufs)
        assert abs(info["measured_lufs"] + info["gain_db"] - info["output_lufs"]) < 0.05
    assert records["peaky"]["loudness"]["limited"]
    assert records["stereo"]["channels"] == 2


def test_peak_mode_and_bad_items_each_get_a_reason(tmp_path: Path) -> None:
    sr = 16000
    rng = np.random.default_rng(3)
    speechy = 0.05 * rng.standard_normal(sr * 2)
    nan = np.full(sr, np.nan)
    inp = manifest_dir(
        tmp_path / "in",
        {
            "good": (speechy, sr),
            "silent": (np.zeros(sr * 2), sr),
            "short": (speechy[: sr // 10], sr),
            "nan": (nan, sr),
        },
        subtype="FLOAT",
    )
    summary = run_stage(LoudnessStage(), tmp_path / "out", in_dir=inp, jobs=1)
    assert summary.exit_code == 0
    kept = [r["id"] for r in read_jsonl(tmp_path / "out" / "manifest.jsonl")]
    assert kept == ["good"]
    reasons = {r["id"]: r["reason"] for r in read_jsonl(tmp_path / "out" / "rejected.jsonl")}
    assert reasons["silent"].startswith("silent")
    assert "too short" in reasons["short"] and "0.10 s" in reasons["short"]
    assert "NaN" in reasons["nan"]

    # peak mode: the 0.1 s item is fine (no gating), its sample peak lands on -3 dBFS
    stage = LoudnessStage(LoudnessStage.Params(mode="peak", peak=-3.0))
    run_stage(stage, tmp_path / "peak", in_dir=inp, jobs=1)
    recs = {r["id"]: r for r in read_jsonl(tmp_path / "peak" / "manifest.jsonl")}
    assert set(recs) == {"good", "short"}
    for rec in recs.values():
        y, _ = sf.read(str(tmp_path / "peak" / rec["audio"]))
        assert abs(20 * np.log10(np.abs(y).max()) - -3.0) < 0.01
        assert true_peak_db(y) <= -1.0


def _write_two_hours(path: Path, sr: int) -> None:
    """Two hours of LibriSpeech at 8 kHz: utterances at gains from -18 to 0 dB with pauses."""
    flacs = sorted(LIBRI.glob("*/*.flac"))
    rng = np.random.default_rng(7)
    utterances = [signal.resample_poly(sf.read(str(f))[0], 1, 2) for f in flacs]
    total = 2 * 3600 * sr
    written = 0
    with sf.SoundFile(str(path), "w", samplerate=sr, channels=1, subtype="PCM_16") as out:
        while written < total:
            u = utterances[rng.integers(len(utterances))] * 10 ** (rng.uniform(-18, 0) / 20)
            gap = np.zeros(int(rng.uniform(0.2, 3.0) * sr))
            chunk = np.concatenate([u, gap])[: total - written]
            out.write(chunk)
            written += chunk.size


@pytest.mark.slow
def test_a_two_hour_file_streams_to_the_whole_file_gain_in_bounded_memory(tmp_path: Path) -> None:
    require_shared()
    sr = 8000
    inp = tmp_path / "in"
    (inp / "audio").mkdir(parents=True)
    _write_two_hours(inp / "audio" / "long.wav", sr)
    rec = {
        "id": "long",
        "audio": "audio/long.wav",
        "duration": 7200.0,
        "sample_rate": sr,
        "channels": 1,
    }
    (tmp_path / "out" / "audio").mkdir(parents=True)
    stage = LoudnessStage()
    ctx = ItemContext(stage_name="loudness", in_dir=inp, out_dir=tmp_path / "out")
    tracemalloc.start()
    [out] = stage.process(rec, ctx)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    # the file is 7200 s * 8000 samples = 460 MB as float64; both passes stay far under that
    assert peak < 40 * 2**20, f"peak traced memory {peak / 2**20:.0f} MiB"
    x, _ = sf.read(str(inp / "audio" / "long.wav"))
    whole = pyloudnorm.Meter(sr).integrated_loudness(x)
    del x
    info = out["loudness"]
    # the gain to the target, before the ceiling lowers it (the file peaks near full scale)
    assert abs(info["wanted_gain_db"] - (-23.0 - whole)) < 0.1, (info, whole)
    assert abs(info["measured_lufs"] - whole) < 0.1
