"""quality: DNSMOS against noise and against the reference code, signal metrics, filters."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from scipy import signal

from audioprep.errors import UsageError
from audioprep.run.runner import run_stage
from audioprep.stages.quality import QualityStage
from audioprep.testing import LIBRI, arrays_manifest_dir, read_jsonl, require_shared

pytest.importorskip("onnxruntime")
pytest.importorskip("speechmos")

#: Clips of 9.01-11 s: one DNSMOS window each, so the noise test stays short.
ONE_WINDOW = ("1998-15444-0002", "2414-128291-0004", "3005-163389-0009")


def manifest_dir(root: Path, files: dict[str, tuple[np.ndarray, int]], subtype="PCM_16") -> Path:
    """A manifest directory holding ``files``, each source a folder per speaker."""
    return arrays_manifest_dir(
        root, files, subtype=subtype, source=lambda i: {"path": f"/data/{i.split('-')[0]}/{i}.wav"}
    )


def libri(name: str) -> tuple[np.ndarray, int]:
    require_shared()
    return sf.read(str(next(LIBRI.glob(f"*/{name}.flac"))))


def with_noise(x: np.ndarray, snr_db: float, seed: int = 0) -> np.ndarray:
    noise = np.random.default_rng(seed).standard_normal(x.size)
    y = x + noise * np.sqrt(np.mean(x**2) / 10 ** (snr_db / 10))
    return y / max(1.0, float(np.abs(y).max()))


@pytest.mark.slow
def test_ovrl_and_bak_drop_with_white_noise(tmp_path: Path) -> None:
    # measured here (2026-11-25), OVRL / BAK:  clean 3.22/3.77, 3.18/4.01, 3.23/3.89;
    # +5 dB SNR 2.04/1.93, 1.67/1.71, 1.90/1.88;  0 dB 1.67/1.57, 1.21/1.24, 1.63/1.62
    files = {}
    for name in ONE_WINDOW:
        x, sr = libri(name)
        files[f"{name}-clean"] = (x, sr)
        files[f"{name}-snr5"] = (with_noise(x, 5), sr)
        files[f"{name}-snr0"] = (with_noise(x, 0), sr)
    inp = manifest_dir(tmp_path / "in", files)
    stage = QualityStage(QualityStage.Params(min_ovrl=2.5))
    assert run_stage(stage, tmp_path / "out", in_dir=inp, jobs=1).exit_code == 0
    kept = read_jsonl(tmp_path / "out" / "manifest.jsonl")
    rejected = read_jsonl(tmp_path / "out" / "rejected.jsonl")
    q = {r["id"]: r["quality"] for r in kept + rejected}
    assert len(q) == 9
    assert sorted(r["id"] for r in kept) == sorted(f"{n}-clean" for n in ONE_WINDOW)
    for r in rejected:
        assert r["metric"] == "ovrl" and r["threshold"] == 2.5 and r["value"] < 2.5
        assert r["reason"] == f"ovrl {r['value']:g} is below --min-ovrl 2.5"
    for name in ONE_WINDOW:
        clean, snr5, snr0 = (q[f"{name}-{k}"] for k in ("clean", "snr5", "snr0"))
        assert clean["windows"] == 1
        assert clean["ovrl"] > 3.0 and clean["bak"] > 3.5
        assert clean["ovrl"] - snr5["ovrl"] > 1.0
        assert clean["bak"] - snr5["bak"] > 1.5
        assert snr5["ovrl"] - snr0["ovrl"] > 0.2
        assert snr5["bak"] - snr0["bak"] > 0.2
        # the signal metrics see the noise too
        assert clean["snr_db"] - snr5["snr_db"] > 5
    mean = {
        k: np.mean([q[f"{n}-{k}"]["ovrl"] for n in ONE_WINDOW]) for k in ("clean", "snr5", "snr0")
    }
    assert mean["clean"] - mean["snr5"] > 1.1 and mean["snr5"] - mean["snr0"] > 0.3

    # the report of that directory, in a real browser
    from audioprep.reports.html import write_report

    page, numbers_path, _ = write_report(tmp_path / "out")
    dom, console = render(page, tmp_path)
    assert console == [], console
    assert 'data-rendered="ok"' in dom
    assert "<h2>Quality</h2>" in dom
    assert dom.count("data-metric=") >= 10
    assert dom.count('class="mark"') >= 1  # the --min-ovrl line on the OVRL histogram
    worst = dom.split('data-clips="worst"')[1].split('data-clips="best"')[0]
    best = dom.split('data-clips="best"')[1].split("<h2>Threshold explorer")[0]
    assert worst.count("<audio") == 5 and best.count("<audio") == 4  # 9 clips, none twice
    assert "snr0" in worst and "clean" not in worst and "clean" in best
    assert '<table class="sources">' in dom and "mean OVRL" in dom


@pytest.mark.slow
def test_dnsmos_agrees_with_speechmos_within_0_01() -> None:
    """The same arrays through speechmos's own DNSMOS (librosa features, its sessions) and ours:
    one clip under 9.01 s (repeated, 3 windows) and one over (1 window)."""
    from speechmos import dnsmos as reference

    from audioprep.engines.quality.dnsmos import DnsmosEngine

    engine = DnsmosEngine()
    for name in ("1998-15444-0000", "2414-128291-0004"):
        x, sr = libri(name)
        x = x.astype(np.float32)
        ours = engine.score(x)
        ref = reference.run(x, sr)
        for key, ref_key in (
            ("ovrl", "ovrl_mos"),
            ("sig", "sig_mos"),
            ("bak", "bak_mos"),
            ("p808", "p808_mos"),
        ):
            assert abs(ours[key] - float(ref[ref_key])) < 0.01, (name, key, ours, ref)


def test_p808_features_equal_librosa() -> None:
    librosa = pytest.importorskip("librosa")
    from audioprep.dsp import dnsmos as d

    seg = (0.1 * np.random.default_rng(0).standard_normal(d.WINDOW)).astype(np.float32)
    mel = librosa.feature.melspectrogram(
        y=seg[:-160], sr=16000, n_fft=321, hop_length=160, n_mels=120
    )
    ref = ((librosa.power_to_db(mel, ref=np.max) + 40) / 40).T
    assert np.abs(d.p808_features(seg) - ref).max() < 1e-4


def test_streamed_windows_equal_the_reference_windows() -> None:
    """Windows scored while streaming are exactly the reference's (count and positions)."""
    from audioprep.dsp import dnsmos as d
    from audioprep.engines.quality.dnsmos import DnsmosStream

    class Fake:  # scores a window by its first sample: shows which windows were taken
        def window(self, seg):
            return float(seg[0]), 0.0, 0.0, 0.0

    for seconds in (0.1, 5.0, 9.0, 9.5, 10.0, 20.5, 33.3):
        n = int(seconds * d.SR)
        x = np.arange(n, dtype=np.float32)
        audio = d.repeat_to_window(x)
        bounds = [d.window_bounds(i) for i in range(d.n_windows(audio.size))]
        # the reference skips windows that float rounding leaves one sample short
        expected = [audio[a] for a, b in bounds if audio[a:b].size == d.WINDOW]
        stream = DnsmosStream(Fake())
        for a in range(0, n, 7001):
            stream.feed(x[a : a + 7001])
        result = stream.result()
        assert result["windows"] == len(expected)
        assert [s[0] for s in stream._scores] == expected


@pytest.mark.parametrize("hop", [1.0, 3.0, 9.01])
def test_a_longer_dnsmos_hop_takes_every_hop_th_window(hop: float) -> None:
    """--dnsmos-hop: windows start at i * hop seconds and end by the last whole second, as the
    reference's do at hop 1 (written out here without the module's helpers; like the reference,
    a clip of 9.0x s still gets its first window)."""
    from audioprep.dsp import dnsmos as d
    from audioprep.engines.quality.dnsmos import DnsmosStream

    class Fake:
        def window(self, seg):
            return float(seg[0]), 0.0, 0.0, 0.0

    for seconds in (5.0, 9.5, 18.0, 20.5, 33.3, 61.0):
        n = int(seconds * 16000)
        x = np.arange(n, dtype=np.float32)
        audio = d.repeat_to_window(x)
        last_second = audio.size // 16000
        starts, i = [], 0
        while i * hop <= max(last_second - 9.01, 0.0) + 1e-9:
            a, b = int(i * hop * 16000), int((i * hop + 9.01) * 16000)
            if b - a == 144160:
                starts.append(audio[a])
            i += 1
        stream = DnsmosStream(Fake(), hop=hop)
        for a in range(0, n, 5003):
            stream.feed(x[a : a + 5003])
        assert stream.result()["windows"] == len(starts) >= 1
        assert [s[0] for s in stream._scores] == starts


def test_bandwidth_clipping_and_filters_name_metric_value_threshold(tmp_path: Path) -> None:
    x, sr = libri("1688-142285-0000")
    lowpass = signal.ellip(10, 0.1, 90, 4000, fs=sr, output="sos")
    phone = signal.resample_poly(signal.sosfilt(lowpass, x), 441, 320)  # to 22.05 kHz
    clipped = np.clip(x * 10 ** (12 / 20), -1.0, 1.0)
    inp1 = manifest_dir(tmp_path / "in1", {"orig": (x, sr), "clipped": (clipped, sr)})
    inp2 = manifest_dir(tmp_path / "in2", {"phone": (phone, 22050)})
    fast = {"dnsmos": False}
    run_stage(QualityStage(QualityStage.Params(**fast)), tmp_path / "o1", in_dir=inp1, jobs=1)
    run_stage(QualityStage(QualityStage.Params(**fast)), tmp_path / "o2", in_dir=inp2, jobs=1)
    q = {
        r["id"]: r["quality"]
        for d in ("o1", "o2")
        for r in read_jsonl(tmp_path / d / "manifest.jsonl")
    }
    assert q["orig"]["bandwidth_hz"] > 7000
    assert q["phone"]["bandwidth_hz"] < 4500
    assert q["orig"]["clipping"] == 0.0
    assert q["clipped"]["clipping"] > 0.001
    assert "ovrl" not in q["orig"]  # --no-dnsmos
    for key in ("loudness_lufs", "true_peak_db", "snr_db", "dc_offset", "silence_share"):
        assert q["orig"][key] is not None

    params = QualityStage.Params(max_clipping=0.001, min_bandwidth=6000, **fast)
    run_stage(QualityStage(params), tmp_path / "f1", in_dir=inp1, jobs=1)
    run_stage(QualityStage(params), tmp_path / "f2", in_dir=inp2, jobs=1)
    assert [r["id"] for r in read_jsonl(tmp_path / "f1" / "manifest.jsonl")] == ["orig"]
    [clip] = read_jsonl(tmp_path / "f1" / "rejected.jsonl")
    assert clip["metric"] == "clipping" and clip["threshold"] == 0.001
    assert clip["value"] == q["clipped"]["clipping"]
    assert (
        clip["reason"].startswith("clipping 0.0") and "above --max-clipping 0.001" in clip["reason"]
    )
    [phone_r] = read_jsonl(tmp_path / "f2" / "rejected.jsonl")
    assert phone_r["metric"] == "bandwidth_hz"
    assert "below --min-bandwidth 6000 Hz" in phone_r["reason"]


def test_bad_items_beside_a_good_one_each_get_a_clear_reason(tmp_path: Path) -> None:
    x, sr = libri("1998-15444-0002")
    inp = manifest_dir(
        tmp_path / "in",
        {
            "good": (x, sr),
            "silent": (np.zeros(int(9.5 * sr)), sr),
            "short": (x[sr : sr + sr // 10], sr),
            "nan": (np.full(sr, np.nan), sr),
        },
        subtype="FLOAT",
    )
    # annotation only: the NaN file alone cannot be measured
    run_stage(QualityStage(), tmp_path / "a", in_dir=inp, jobs=1)
    q = {r["id"]: r["quality"] for r in read_jsonl(tmp_path / "a" / "manifest.jsonl")}
    assert set(q) == {"good", "silent", "short"}
    [nan] = read_jsonl(tmp_path / "a" / "rejected.jsonl")
    assert nan["id"] == "nan" and "NaN" in nan["reason"]
    assert q["silent"]["silence_share"] == 1.0 and q["silent"]["loudness_lufs"] is None
    assert q["silent"]["snr_db"] is None and q["silent"]["true_peak_db"] is None
    assert q["short"]["loudness_lufs"] is None and q["short"]["windows"] == 3  # repeated
    assert q["good"]["ovrl"] > 3.0

    # with filters each bad item says why
    params = QualityStage.Params(dnsmos=False, max_silence=0.9, min_duration=0.5)
    run_stage(QualityStage(params), tmp_path / "b", in_dir=inp, jobs=1)
    assert [r["id"] for r in read_jsonl(tmp_path / "b" / "manifest.jsonl")] == ["good"]
    reasons = {r["id"]: r["reason"] for r in read_jsonl(tmp_path / "b" / "rejected.jsonl")}
    assert reasons["silent"] == "silence_share 1 is above --max-silence 0.9"
    assert reasons["short"] == "duration 0.1 s is below --min-duration 0.5 s"
    assert "NaN" in reasons["nan"]


def test_options_are_checked_before_any_work() -> None:
    with pytest.raises(UsageError, match="--min-ovrl 7 is above the maximum 5"):
        QualityStage(QualityStage.Params(min_ovrl=7))
    with pytest.raises(UsageError, match="drop --no-dnsmos"):
        QualityStage(QualityStage.Params(min_ovrl=3, dnsmos=False)).check()
    with pytest.raises(UsageError, match="--dnsmos-hop 0.0 is below the minimum 0.1"):
        QualityStage(QualityStage.Params(dnsmos_hop=0.0)).check()
    import onnxruntime

    if "CUDAExecutionProvider" not in onnxruntime.get_available_providers():
        with pytest.raises(UsageError, match="CUDAExecutionProvider"):
            QualityStage(QualityStage.Params(device="cuda")).check()


def test_signal_meter_streamed_equals_whole_array_functions() -> None:
    from audioprep.dsp import metrics as m
    from audioprep.dsp.loudness import integrated_loudness, to_db, true_peak

    x, sr = libri("2609-156975-0002")
    x = np.stack([x, 0.5 * x + 0.01])  # two channels, one with a DC offset
    meter = m.SignalMeter(sr=sr, channels=2)
    for a in range(0, x.shape[1], 4099):
        meter.feed(x[:, a : a + 4099])
    r = meter.result()
    assert r["loudness_lufs"] == round(integrated_loudness(x, sr=sr), 2)
    assert r["true_peak_db"] == round(to_db(true_peak(x, sr=sr)), 2)
    assert r["bandwidth_hz"] == round(m.effective_bandwidth(x, sr=sr))
    assert r["silence_share"] == round(m.silence_share(x, sr=sr), 4)
    assert r["dc_offset"] == pytest.approx(m.dc_offset(x), abs=1e-6)
    assert r["snr_db"] == pytest.approx(m.wada_snr(x), abs=0.05)
    assert r["clipping"] == m.clipping_ratio(x) == 0.0


def _chromium() -> str:
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if not found:
        pytest.skip("chromium is not installed (make test installs it with apt-get)")
    return found


def render(page: Path, tmp: Path) -> tuple[str, list[str]]:
    """Load a page in headless chromium: the DOM after its scripts ran, and console lines."""
    args = [
        _chromium(),
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        f"--user-data-dir={tmp / 'chromium-profile'}",
        "--enable-logging=stderr",
        "--v=0",
        "--dump-dom",
        page.as_uri(),
    ]
    proc = subprocess.run(args, capture_output=True, text=True, timeout=120)
    return proc.stdout, [ln for ln in proc.stderr.splitlines() if ":CONSOLE" in ln]


def test_report_on_a_chain_folder_draws_the_funnel(tmp_path: Path) -> None:
    """ingest -> quality (filters) -> loudness, as numbered directories: the funnel page."""
    from audioprep.reports.html import write_report
    from audioprep.stages.ingest import IngestStage
    from audioprep.stages.loudness import LoudnessStage

    x, sr = libri("1998-15444-0002")
    src = tmp_path / "src"
    src.mkdir()
    sf.write(str(src / "good.wav"), x, sr)
    sf.write(str(src / "clipped.wav"), np.clip(x * 4, -1, 1), sr)
    sf.write(str(src / "short.wav"), x[: sr // 10], sr)
    sf.write(str(src / "silent.wav"), np.zeros(sr * 3), sr)
    work = tmp_path / "work"
    run_stage(IngestStage(IngestStage.Params(sources=(str(src),))), work / "01-ingest", jobs=1)
    params = QualityStage.Params(dnsmos=False, max_clipping=0.001, min_duration=0.5)
    run_stage(QualityStage(params), work / "02-quality", in_dir=work / "01-ingest", jobs=1)
    run_stage(LoudnessStage(), work / "03-loudness", in_dir=work / "02-quality", jobs=1)

    page, numbers_path, numbers = write_report(work)
    assert page == work / "report.html"
    steps = numbers["steps"]
    assert [s["stage"] for s in steps] == ["ingest", "quality", "loudness"]
    assert [(s["items_in"], s["items_out"]) for s in steps] == [(4, 4), (4, 2), (2, 1)]
    assert steps[1]["hours_in"] == pytest.approx(steps[0]["hours_out"])
    reasons = {r["reason"] for s in steps for r in s["reasons"]}
    assert "clipping N is above --max-clipping N" in reasons
    assert "duration N s is below --min-duration N s" in reasons
    assert any(r.startswith("silent") for r in reasons)
    lost = sum(s["rejected_hours"] for s in steps)
    assert steps[0]["hours_in"] - steps[-1]["hours_out"] == pytest.approx(lost, abs=1e-6)
    assert numbers["items"] == 1

    dom, console = render(page, tmp_path)
    assert console == [], console
    assert 'data-rendered="ok"' in dom
    assert dom.count('<tr class="step">') == 3
    assert "Where the hours went" in dom and "--max-clipping" in dom
    assert "<h2>Quality</h2>" in dom and "<h2>Loudness</h2>" in dom  # the stages' own sections
