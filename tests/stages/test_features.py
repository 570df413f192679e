"""features: logspec with the VAE workflow's settings, exact pad/crop, shards, streaming."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from audioprep.testing import LIBRI, read_jsonl, require_shared

pytest.importorskip("librosa")

from audioprep.dsp import features as F  # noqa: E402
from audioprep.engines.tone.model import mono_blocks  # noqa: E402
from audioprep.run.runner import run_stage  # noqa: E402
from audioprep.stages.features import FeaturesStage, load_array  # noqa: E402

SR = 22050
VAE_SAMPLES = round(0.74 * SR)  # 16317


def make_dir(root: Path, signals: dict[str, tuple[np.ndarray, int]]) -> Path:
    """A manifest directory of wav files (float32) from ``{id: (samples, rate)}``."""
    (root / "audio").mkdir(parents=True)
    lines = []
    for item_id, (y, sr) in signals.items():
        sf.write(root / "audio" / f"{item_id}.wav", y, sr, subtype="FLOAT")
        rec = {
            "id": item_id,
            "audio": f"audio/{item_id}.wav",
            "duration": len(y) / sr,
            "sample_rate": sr,
            "channels": 1,
            "source": {"title": f"title {item_id}", "genre": "speech"},
        }
        lines.append(json.dumps(rec) + "\n")
    (root / "manifest.jsonl").write_text("".join(lines))
    return root


def speech(n_files: int = 3, sr: int = SR) -> dict[str, tuple[np.ndarray, int]]:
    """Real LibriSpeech utterances (speaker 1998), decoded mono float32 at ``sr``."""
    require_shared()
    files = sorted((LIBRI / "1998").glob("*.flac"))[:n_files]
    return {
        f"u{i}": (np.concatenate(list(mono_blocks(f, sample_rate=sr))), sr)
        for i, f in enumerate(files)
    }


def run(stage_params: dict, in_dir: Path, out: Path) -> list[dict]:
    stage = FeaturesStage(FeaturesStage.Params(**stage_params))
    stage.check()
    summary = run_stage(stage, out, in_dir=in_dir, jobs=1, progress=False)
    assert summary.items_failed == 0, (out / "errors.jsonl").read_text()
    return read_jsonl(out / "manifest.jsonl")


# measured 2026-11-25 on the 10 LibriSpeech utterances of speaker 1998 (first 0.74 s at
# 22.05 kHz, 64 Griffin-Lim iterations, dB floored at -100): correlation of the restored
# audio's log spectrogram with the original's 0.9956-0.9994; asserted with a margin.
GRIFFIN_LIM_MIN_CORR = 0.99


def test_logspec_vae_settings_invert_and_restore(tmp_path: Path) -> None:
    signals = speech(3)
    in_dir = make_dir(tmp_path / "in", signals)
    params = {"kind": "logspec", "frame": 512, "hop": 256, "pad_to": 0.74, "crop_to": 0.74}
    records = run({**params, "normalise": "minmax"}, in_dir, tmp_path / "out")
    assert len(records) == 3
    for rec in records:
        info = rec["features"]
        arr = load_array(tmp_path / "out", rec)
        assert arr.shape == (257, 64) == tuple(info["shape"])
        assert arr.dtype == np.float32 and info["dtype"] == "float32"
        assert info["samples"] == VAE_SAMPLES
        assert arr.min() == 0.0 and arr.max() == 1.0
        # the recorded constants are the raw array's own min and max, and invert it
        y = signals[rec["id"]][0]
        raw = F.logspec(F.fit_length(y, pad_to=VAE_SAMPLES, crop_to=VAE_SAMPLES)[0])
        assert info["min"] == float(raw.min()) and info["max"] == float(raw.max())
        back = F.minmax_denormalise(arr, lo=info["min"], hi=info["max"])
        # float32 rounding of the [0, 1] values only (measured: under 1 ulp of the range)
        assert np.abs(back - raw).max() <= 2 * np.finfo(np.float32).eps * (
            info["max"] - info["min"]
        )
        # Griffin-Lim: the restored audio's spectrogram follows the original's
        audio = F.restore_audio(arr, hop=256, lo=info["min"], hi=info["max"], length=VAE_SAMPLES)
        assert audio.shape == (VAE_SAMPLES,)
        again = F.logspec(audio)
        corr = np.corrcoef(np.maximum(again, -100).ravel(), np.maximum(raw, -100).ravel())[0, 1]
        assert corr > GRIFFIN_LIM_MIN_CORR, corr


def test_logspec_matches_librosa() -> None:
    import librosa

    y = np.random.default_rng(3).standard_normal(5000).astype(np.float32) * 0.3
    for n in (100, 512, 513, 5000):
        ref = librosa.amplitude_to_db(
            np.abs(librosa.stft(y[:n], n_fft=512, hop_length=256)), top_db=None
        )
        assert np.abs(F.logspec(y[:n]) - ref).max() < 1e-2
    mel = librosa.feature.melspectrogram(y=y, sr=SR, n_fft=512, hop_length=256, n_mels=64)
    assert np.allclose(
        F.melspec_db(y, sr=SR, n_mels=64), librosa.power_to_db(mel, top_db=None), atol=1e-3
    )
    mf = librosa.feature.mfcc(S=librosa.power_to_db(mel, top_db=None), n_mfcc=13)
    assert np.allclose(F.mfcc(y, sr=SR, n_mels=64, n_mfcc=13), mf, atol=1e-2)


def test_streamed_rows_equal_whole_signal() -> None:
    y = np.random.default_rng(1).standard_normal(30_001).astype(np.float32)
    whole = F.mfcc(y, sr=16000, frame=400, hop=160, n_mels=40, n_mfcc=13)
    for size in (1, 159, 4096):
        blocks = (y[i : i + size] for i in range(0, len(y), size))
        rows = list(
            F.feature_rows(blocks, kind="mfcc", sr=16000, frame=400, hop=160, n_mels=40, n_mfcc=13)
        )
        assert np.allclose(np.concatenate(rows).T, whole, atol=1e-3)


def test_pad_and_crop_exact_to_the_sample(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    n = 10_007
    in_dir = make_dir(
        tmp_path / "in", {"a": (rng.standard_normal(n).astype(np.float32) * 0.1, 8000)}
    )
    pad_to = (n + 1234) / 8000
    (rec,) = run({"pad_to": pad_to}, in_dir, tmp_path / "pad")
    info = rec["features"]
    assert (info["samples"], info["pad_samples"], info["crop_samples"]) == (n + 1234, 1234, 0)
    assert info["source_samples"] == n
    assert info["shape"] == [257, 1 + (n + 1234) // 256]
    crop_to = 5001 / 8000
    (rec,) = run({"crop_to": crop_to, "pad_to": 0.5}, in_dir, tmp_path / "crop")
    info = rec["features"]
    assert (info["samples"], info["pad_samples"], info["crop_samples"]) == (5001, 0, n - 5001)
    arr = load_array(tmp_path / "crop", rec)
    y = sf.read(in_dir / "audio" / "a.wav", dtype="float32")[0]
    assert np.allclose(arr, F.logspec(y[:5001]), atol=1e-3)
    # the pure function agrees
    y2, padded, cropped = F.fit_length(y, pad_to=n + 5, crop_to=n + 5)
    assert (len(y2), padded, cropped) == (n + 5, 5, 0) and not y2[n:].any()


def test_shards_hold_the_same_arrays_as_single_files(tmp_path: Path) -> None:
    signals = speech(3, sr=16000)
    in_dir = make_dir(tmp_path / "in", signals)
    common = {"kind": "mel", "n_mels": 40, "normalise": "minmax", "dtype": "float16"}
    single = run(common, in_dir, tmp_path / "single")
    sharded = run({**common, "shard_size": 2}, in_dir, tmp_path / "sharded")
    assert sorted((tmp_path / "sharded" / "arrays").iterdir()) == [
        tmp_path / "sharded" / "arrays" / n
        for n in ("index.jsonl", "shard-00000.npz", "shard-00001.npz")
    ]
    index = read_jsonl(tmp_path / "sharded" / "arrays" / "index.jsonl")
    assert [(r["id"], r["shard"], r["index"]) for r in index] == [
        ("u0", "arrays/shard-00000.npz", 0),
        ("u1", "arrays/shard-00000.npz", 1),
        ("u2", "arrays/shard-00001.npz", 0),
    ]
    for a, b in zip(single, sharded, strict=True):
        x, y = load_array(tmp_path / "single", a), load_array(tmp_path / "sharded", b)
        assert x.dtype == y.dtype == np.float16 and x.shape == y.shape == tuple(
            b["features"]["shape"]
        )
        assert np.array_equal(x, y)
        assert a["features"]["min"] == b["features"]["min"]
        assert (tmp_path / "sharded" / b["audio"]).is_file()

    # a resumed run whose retried item shifts the members packs the shards again
    hidden = in_dir / "audio" / "u0.wav"
    hidden.rename(in_dir / "u0.wav")
    stage = FeaturesStage(FeaturesStage.Params(**common, shard_size=2))
    first = run_stage(stage, tmp_path / "resumed", in_dir=in_dir, jobs=1, progress=False)
    assert first.items_failed == 1
    (in_dir / "u0.wav").rename(hidden)
    resumed = run({**common, "shard_size": 2}, in_dir, tmp_path / "resumed")
    assert [r["features"]["shard"] for r in resumed] == [
        "arrays/shard-00000.npz",
        "arrays/shard-00000.npz",
        "arrays/shard-00001.npz",
    ]
    for a, b in zip(single, resumed, strict=True):
        assert np.array_equal(
            load_array(tmp_path / "single", a), load_array(tmp_path / "resumed", b)
        )
    assert not (tmp_path / "resumed" / "arrays" / ".parts").exists()


def test_mfcc_and_tone_kinds(tmp_path: Path) -> None:
    in_dir = make_dir(tmp_path / "in", speech(2, sr=16000))
    recs = run({"kind": "mfcc", "n_mfcc": 13, "frame": 400, "hop": 160}, in_dir, tmp_path / "m")
    assert all(r["features"]["shape"][0] == 13 for r in recs)
    recs = run({"kind": "tone"}, in_dir, tmp_path / "t")
    for rec in recs:
        vec = load_array(tmp_path / "t", rec)
        assert vec.shape == (180,) and rec["features"]["sample_rate"] == 22050
        assert np.isfinite(vec).all()


def test_tone_vector_matches_the_librosa_recipe() -> None:
    import librosa

    require_shared()
    f = sorted((LIBRI / "1688").glob("*.flac"))[0]
    y = np.concatenate(list(mono_blocks(f, sample_rate=SR)))
    mel = librosa.feature.melspectrogram(y=y, sr=SR)
    ref = np.concatenate(
        [
            librosa.feature.mfcc(S=librosa.power_to_db(mel, top_db=None), n_mfcc=40).mean(1),
            librosa.feature.chroma_stft(S=np.abs(librosa.stft(y)), sr=SR, tuning=0.0).mean(1),
            mel.mean(1),
        ]
    )
    assert np.allclose(F.tone_vector(y, sr=SR), ref, rtol=1e-4, atol=1e-3)


def test_bad_options_are_usage_errors() -> None:
    from audioprep.errors import UsageError

    for bad in ({"pad_to": 2.0, "crop_to": 1.0}, {"hop": 1024}, {"kind": "mfcc", "n_mfcc": 200}):
        with pytest.raises(UsageError):
            FeaturesStage(FeaturesStage.Params(**bad)).check()


@pytest.mark.slow
def test_a_long_item_streams_with_bounded_memory(tmp_path: Path) -> None:
    """20 minutes at 16 kHz: a 77 MB float32 logspec computed with ~5 MB of allocations
    (measured: 4.8 MB peak for the decode + STFT blocks, whatever the length)."""
    import tracemalloc

    sr, minutes = 16000, 20
    (tmp_path / "in" / "audio").mkdir(parents=True)
    rng = np.random.default_rng(0)
    with sf.SoundFile(tmp_path / "in" / "audio" / "long.wav", "w", sr, 1, "PCM_16") as fh:
        for _ in range(minutes * 6):
            fh.write((rng.standard_normal(sr * 10) * 0.1).astype(np.float32))
    rec = {
        "id": "long",
        "audio": "audio/long.wav",
        "duration": minutes * 60.0,
        "sample_rate": sr,
        "channels": 1,
    }
    (tmp_path / "in" / "manifest.jsonl").write_text(json.dumps(rec) + "\n")
    tracemalloc.start()
    try:
        (out,) = run({"normalise": "minmax", "dtype": "float16"}, tmp_path / "in", tmp_path / "o")
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    frames = 1 + minutes * 60 * sr // 256
    assert out["features"]["shape"] == [257, frames]
    arr = load_array(tmp_path / "o", out)
    assert arr.dtype == np.float16 and arr.shape == (257, frames)
    assert arr.min() == 0 and arr.max() == 1
    full_bytes = 257 * frames * 4  # the float32 matrix a whole-file computation would hold
    assert peak < full_bytes / 5, (peak, full_bytes)
