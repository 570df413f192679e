"""separate with the real Spleeter 2.4.2 (own environment) and the real 2stems weights."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import soundfile as sf

from audioprep.testing import LIBRI, MODELS, MUSANMIX, cli, read_jsonl, require_shared

pytestmark = pytest.mark.slow  # real audio through the CLI, or models


def sdr(reference: np.ndarray, estimate: np.ndarray) -> float:
    n = min(len(reference), len(estimate))
    r, e = reference[:n], estimate[:n]
    return float(10 * np.log10(np.sum(r**2) / np.sum((r - e) ** 2)))


@pytest.fixture(scope="module")
def mixture(tmp_path_factory):
    """22 s of LibriSpeech speech over the instrumental start of musanmix (RMS 1 : 0.7), 16 kHz."""
    require_shared()
    root = tmp_path_factory.mktemp("sep")
    speech = np.concatenate([sf.read(str(f))[0] for f in sorted((LIBRI / "2609").glob("*.flac"))])
    music = sf.read(str(MUSANMIX))[0][: 22 * 16000]
    speech = speech[: len(music)]
    music = music * 0.7 * np.sqrt(np.mean(speech**2)) / np.sqrt(np.mean(music**2))
    mix = speech + music
    scale = 0.9 / np.abs(mix).max()
    d = root / "in"
    (d / "audio").mkdir(parents=True)
    sf.write(d / "audio" / "mix.wav", mix * scale, 16000, subtype="FLOAT")
    rec = {
        "id": "mix",
        "audio": "audio/mix.wav",
        "duration": len(mix) / 16000,
        "sample_rate": 16000,
        "channels": 1,
        "note": "kept",
    }
    (d / "manifest.jsonl").write_text(json.dumps(rec) + "\n")
    return d, speech * scale, mix * scale


def test_vocals_beat_the_mixture_and_windows_match_a_whole_run(mixture, tmp_path) -> None:
    d, speech, mix = mixture
    cli(
        "separate",
        d,
        tmp_path / "w",
        "--engine",
        "spleeter",
        "--window",
        "8",
        "--overlap",
        "1",
        "-q",
        "--keep-accompaniment",
    )
    cli("separate", d, tmp_path / "whole", "--engine", "spleeter", "--window", "60", "-q")
    rec = read_jsonl(tmp_path / "w" / "manifest.jsonl")[0]
    vocals, sr = sf.read(str(tmp_path / "w" / rec["audio"]))
    whole, _ = sf.read(
        str(tmp_path / "whole" / read_jsonl(tmp_path / "whole" / "manifest.jsonl")[0]["audio"])
    )
    assert sr == 16000 and len(vocals) == len(mix) == len(whole)  # to the sample
    base, windowed, single = sdr(speech, mix), sdr(speech, vocals), sdr(speech, whole)
    # measured here: mixture 3.1 dB, whole-file vocals about 5.8 dB
    assert single >= base + 2, (base, single)
    assert abs(windowed - single) <= 0.3, (windowed, single)
    assert rec["note"] == "kept" and rec["separate"]["model"] == "spleeter:2stems"
    accompaniment, _ = sf.read(str(tmp_path / "w" / rec["accompaniment"]))
    assert len(accompaniment) == len(mix)


def test_longer_than_600_seconds_comes_out_complete(tmp_path) -> None:
    require_shared()
    y = sf.read(str(MUSANMIX))[0]
    # 666 s (Spleeter alone would stop at 600 s); the last seconds are speech in the loop
    long = np.tile(y, 9)[: 16000 * 666]
    d = tmp_path / "in"
    (d / "audio").mkdir(parents=True)
    sf.write(d / "audio" / "long.wav", long, 16000)
    (d / "manifest.jsonl").write_text(
        json.dumps(
            {
                "id": "long",
                "audio": "audio/long.wav",
                "duration": 666.0,
                "sample_rate": 16000,
                "channels": 1,
            }
        )
        + "\n"
    )
    cli("separate", d, tmp_path / "out", "--engine", "spleeter", "-q", "--window", "60")
    rec = read_jsonl(tmp_path / "out" / "manifest.jsonl")[0]
    out, sr = sf.read(str(tmp_path / "out" / rec["audio"]))
    assert len(out) == len(long) and rec["duration"] == 666.0
    # the end is speech in musanmix's loop (64.8 to 69.8 s of it): the vocals there are not silent
    tail_rms = np.sqrt(np.mean(out[-16000 * 5 :] ** 2))
    assert tail_rms > 0.01, tail_rms


def test_missing_environment_model_or_checkpoint_are_clear_errors(mixture, tmp_path, monkeypatch):
    d, _, _ = mixture
    env = {"AUDIOPREP_SPLEETER_PYTHON": str(tmp_path / "nowhere" / "python")}
    proc = cli(
        "separate",
        d,
        tmp_path / "a",
        "--engine",
        "spleeter",
        check=False,
        env={**__import__("os").environ, **env},
    )
    assert proc.returncode == 3 and "make spleeter" in proc.stderr
    empty = tmp_path / "models"
    (empty / "spleeter" / "2stems").mkdir(parents=True)  # a folder without a checkpoint
    proc = cli(
        "separate", d, tmp_path / "b", "--engine", "spleeter", "--model-dir", empty, check=False
    )
    assert proc.returncode == 3 and "no checkpoint" in proc.stderr and "random" in proc.stderr
    shutil.rmtree(empty / "spleeter")
    proc = cli(
        "separate", d, tmp_path / "c", "--engine", "spleeter", "--model-dir", empty, check=False
    )
    assert proc.returncode == 3 and "no checkpoint" in proc.stderr
    for out in ("a", "b", "c"):
        assert not (tmp_path / out / "manifest.jsonl").exists()
    assert MODELS.exists()


def test_device_cuda_without_a_gpu_is_refused(mixture, tmp_path) -> None:
    d, _, _ = mixture
    proc = cli(
        "separate",
        d,
        tmp_path / "gpu",
        "--engine",
        "spleeter",
        "--device",
        "cuda",
        "-j",
        "1",
        check=False,
    )
    assert proc.returncode == 3 and "sees no GPU" in proc.stderr
    assert not (tmp_path / "gpu" / "stage.json").exists()


def test_worker_graph_built_once_equals_spleeter_separate(tmp_path) -> None:
    """The worker's one-session runner gives Separator.separate's output to the bit, for windows
    of two lengths run one after the other in the same session (no rebuild per shape)."""
    require_shared()
    from audioprep.engines.separate.spleeter import WORKER, spleeter_python

    if not spleeter_python().is_file():
        pytest.skip("Spleeter's environment is missing (make spleeter)")
    script = f"""
import os, sys
os.environ["MODEL_PATH"] = {str(MODELS / "spleeter")!r}
os.environ["CUDA_VISIBLE_DEVICES"] = "-1"
import importlib.util
import numpy as np
from spleeter.separator import Separator
spec = importlib.util.spec_from_file_location("spleeter_worker", {str(WORKER)!r})
worker = importlib.util.module_from_spec(spec)
spec.loader.exec_module(worker)
_session_runner = worker._session_runner
rng = np.random.default_rng(0)
sep = Separator("spleeter:2stems", multiprocess=False)
run = _session_runner(sep, ["vocals", "accompaniment"])
for n in (44100 * 3 + 17, 44100 * 5):
    x = (rng.standard_normal((n, 2)) * 0.1).astype("float32")
    ours, theirs = run(x), sep.separate(x)
    for s in ("vocals", "accompaniment"):
        assert ours[s].shape == (n, 2), ours[s].shape
        assert np.array_equal(ours[s], theirs[s]), (s, float(np.abs(ours[s] - theirs[s]).max()))
print("same")
"""
    import subprocess

    out = subprocess.run(
        [str(spleeter_python()), "-c", script], capture_output=True, text=True, timeout=300
    )
    assert out.returncode == 0 and out.stdout.strip().endswith("same"), out.stderr[-2000:]
