"""Hostile input v2 (issue 28): one test (or a parametrised group) per finding, on real files.

Each test names its item number. Memory cases live in ``test_memory.py``.
"""

from __future__ import annotations

import json
import os
import tarfile
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from audioprep.errors import UsageError
from audioprep.testing import read_jsonl


def manifest(root: Path, items: dict[str, np.ndarray | bytes], *, sr: int = 16000, **extra) -> Path:
    """A manifest directory ``root`` holding one wav per id (an array) or raw bytes (a damaged
    file), each record carrying ``extra[id]`` fields when given."""
    (root / "audio").mkdir(parents=True)
    lines = []
    for item_id, data in items.items():
        name = f"audio/{item_id.replace('.', '-')}.wav"
        if isinstance(data, bytes):
            (root / name).write_bytes(data)
            frames, channels = 8000, 1
        else:
            sf.write(root / name, data, sr)
            frames, channels = len(data), (1 if data.ndim == 1 else data.shape[1])
        rec = {
            "id": item_id,
            "audio": name,
            "duration": frames / sr,
            "sample_rate": sr,
            "channels": channels,
            **extra.get(item_id, {}),
        }
        lines.append(json.dumps(rec) + "\n")
    (root / "manifest.jsonl").write_text("".join(lines))
    return root


def tone(seconds: float = 1.0, sr: int = 16000, freq: float = 440.0) -> np.ndarray:
    t = np.arange(int(seconds * sr)) / sr
    return (0.3 * np.sin(2 * np.pi * freq * t)).astype(np.float32)


# -- 17: webdataset keys -----------------------------------------------------------------------
def test_17_webdataset_keys_stay_unique_after_dots_go(tmp_path: Path) -> None:
    from audioprep.exports import export

    src = manifest(tmp_path / "in", {"dot.id": tone(0.2), "dot_id": tone(0.2, freq=300)})
    export(src, tmp_path / "out", fmt="webdataset")
    with tarfile.open(tmp_path / "out" / "shard-000000.tar") as tar:
        names = tar.getnames()
        keys = {n.rsplit(".", 1)[0] for n in names}
        ids = {json.load(tar.extractfile(n))["id"] for n in names if n.endswith(".json")}
    assert len(names) == 4 and len(keys) == 2 and ids == {"dot.id", "dot_id"}
    assert all("." not in k for k in keys)


# -- 11: one bad record in an export is skipped, not fatal --------------------------------------
@pytest.mark.parametrize("fmt", ["lhotse", "spectrogram-captions"])
def test_11_one_bad_record_is_an_export_error(tmp_path: Path, fmt: str) -> None:
    pytest.importorskip("lhotse" if fmt == "lhotse" else "PIL")
    from audioprep.exports import export

    items = {"good": tone(1.0), "words": tone(1.0, freq=300), "broken": b"RIFF\x00garbage" * 10}
    src = manifest(tmp_path / "in", items, words={"words": [1, 2]})
    stats = export(src, tmp_path / "out", fmt=fmt)
    errors = read_jsonl(tmp_path / "out" / "export-errors.jsonl")
    skipped = {e.get("id") for e in errors}
    assert "broken" in skipped
    if fmt == "lhotse":
        assert "words" in skipped and stats["items"] == 1
    assert stats["exit_code"] == 1
    assert all("\n" not in e["reason"] and e["reason"] for e in errors)
    # nothing of a skipped item is left in OUT
    assert not list((tmp_path / "out").rglob("broken*"))


# -- 27: caption templates -------------------------------------------------------------------
@pytest.mark.parametrize(
    "template",
    ["{duration:.999999999f}", "{0}", "{title:{id}}", "{title!z}", "{duration:999999d}", "{}"],
)
def test_27_caption_specs_are_checked_before_any_work(tmp_path: Path, template: str) -> None:
    from audioprep.exports import export

    src = manifest(tmp_path / "in", {"a": tone(0.5)})
    with pytest.raises(UsageError, match="--caption"):
        export(src, tmp_path / "out", fmt="spectrogram-captions", caption=template)
    assert not (tmp_path / "out").exists()


def test_27_a_spec_that_does_not_fit_a_value_gives_its_text() -> None:
    from audioprep.exports.spectrogram_captions import render_caption

    rec = {"id": "a", "duration": 1.5, "title": "Rain"}
    assert render_caption("{title:.2f} {duration:d} {duration:>6.2f}", rec)[0] == "Rain 1.5 1.50"


def nan_tone(seconds: float = 1.0) -> np.ndarray:
    y = tone(seconds)
    y[len(y) // 2 : len(y) // 2 + 50] = np.nan
    return y


def float_manifest(root: Path, items: dict[str, np.ndarray], sr: int = 16000) -> Path:
    from audioprep.testing import arrays_manifest_dir

    return arrays_manifest_dir(root, {k: (v, sr) for k, v in items.items()}, subtype="FLOAT")


# -- 19, 22: NaN audio is said to hold NaN, and features rejects it ------------------------------
@pytest.mark.parametrize("stage_name", ["dedupe", "repeats", "tone", "features"])
def test_19_22_nan_audio_is_named_as_such(tmp_path: Path, stage_name: str) -> None:
    from audioprep.core.registry import load
    from audioprep.run.runner import run_stage

    src = float_manifest(
        tmp_path / "in", {"good": tone(2.0), "good2": tone(2.0, freq=300), "nan": nan_tone(2.0)}
    )
    cls = load(stage_name)
    stage = cls(cls.Params(clusters=2)) if stage_name == "tone" else cls()
    run_stage(stage, tmp_path / "out", in_dir=src, jobs=1)
    out = tmp_path / "out"
    lines = read_jsonl(out / "errors.jsonl") + read_jsonl(out / "rejected.jsonl")
    reasons = [e["reason"] for e in lines if e["id"] == "nan"]
    assert reasons and "NaN" in reasons[0] and "JSON" not in reasons[0], lines
    if stage_name == "features":  # rejected with the reason, never an array of NaN
        assert [e["id"] for e in read_jsonl(out / "rejected.jsonl")] == ["nan"]
        assert [r["id"] for r in read_jsonl(out / "manifest.jsonl")] == ["good", "good2"]
        assert sorted(p.name for p in (out / "arrays").glob("*.npy")) == ["good.npy", "good2.npy"]


# -- 21: loudness --mode peak on 8 channels ------------------------------------------------------
def test_21_peak_mode_takes_eight_channels(tmp_path: Path) -> None:
    from audioprep.run.runner import run_stage
    from audioprep.stages.loudness import LoudnessStage

    y = np.repeat(tone(1.0)[:, None], 8, axis=1) * 0.5
    src = float_manifest(tmp_path / "in", {"eight": y})
    stage = LoudnessStage(LoudnessStage.Params(mode="peak", peak=-3.0))
    summary = run_stage(stage, tmp_path / "out", in_dir=src, jobs=1)
    assert summary.items_ok == 1, read_jsonl(tmp_path / "out" / "errors.jsonl")
    rec = read_jsonl(tmp_path / "out" / "manifest.jsonl")[0]
    out, _ = sf.read(tmp_path / "out" / rec["audio"])
    assert out.shape[1] == 8 and abs(20 * np.log10(np.abs(out).max()) + 3.0) < 0.05
    # the LUFS mode still refuses it, with its own reason
    run_stage(LoudnessStage(), tmp_path / "lufs", in_dir=src, jobs=1)
    assert "5 channels" in read_jsonl(tmp_path / "lufs" / "errors.jsonl")[0]["reason"]


# -- 9: features --pad-to has a bound computed before any work ------------------------------------
def test_9_pad_to_a_huge_length_is_refused_up_front(tmp_path: Path) -> None:
    from audioprep.stages.features import FeaturesStage

    with pytest.raises(UsageError, match="--pad-to .* at most"):
        FeaturesStage(FeaturesStage.Params(pad_to=1e12)).check()
    FeaturesStage(FeaturesStage.Params(pad_to=30.0)).check()  # an ordinary length is fine


# -- 31 (slice part): a segment that ends past the audio ----------------------------------------
def test_31_slice_segment_past_the_end_is_our_sentence(tmp_path: Path) -> None:
    from audioprep.run.runner import run_stage
    from audioprep.stages.slice import SliceStage

    segs = [{"start": 0.0, "end": 100.0, "label": "speech"}]
    src = manifest(tmp_path / "in", {"a": tone(20.0)}, a={"segments": segs})
    summary = run_stage(SliceStage(), tmp_path / "out", in_dir=src, jobs=1)
    errors = read_jsonl(tmp_path / "out" / "errors.jsonl")
    assert not any("psf_fseek" in e["reason"] for e in errors), errors
    clips = read_jsonl(tmp_path / "out" / "manifest.jsonl")
    assert summary.items_failed == 0 and clips
    for clip in clips:  # every clip within the 20 s of audio, its duration what it holds
        assert clip["offset"] + clip["duration"] <= 20.0 + 1e-6
        assert sf.info(tmp_path / "out" / clip["audio"]).frames == round(clip["duration"] * 16000)


# -- 20: slice --random on a truncated mp3 --------------------------------------------------------
def test_20_random_excerpts_of_a_truncated_mp3_hold_what_they_say(tmp_path: Path) -> None:
    from audioprep.run.runner import run_stage
    from audioprep.stages.slice import SliceStage
    from audioprep.testing import ffmpeg

    src = tmp_path / "in"
    (src / "audio").mkdir(parents=True)
    ffmpeg("-f", "lavfi", "-i", "sine=f=440:d=10", "-ar", "16000", str(tmp_path / "t.mp3"))
    (src / "audio" / "t.mp3").write_bytes((tmp_path / "t.mp3").read_bytes()[:9000])
    rec = {"id": "t", "audio": "audio/t.mp3", "duration": 10.0, "sample_rate": 16000}
    (src / "manifest.jsonl").write_text(json.dumps({**rec, "channels": 1}) + "\n")
    stage = SliceStage(SliceStage.Params(random=8, duration=0.5, seed=3))
    run_stage(stage, tmp_path / "out", in_dir=src, jobs=1)
    clips = read_jsonl(tmp_path / "out" / "manifest.jsonl")
    rejected = read_jsonl(tmp_path / "out" / "rejected.jsonl")
    assert len(clips) + len(rejected) == 8 and rejected
    assert all("past the end" in r["reason"] for r in rejected)
    for clip in clips:
        frames = sf.info(tmp_path / "out" / clip["audio"]).frames
        assert frames > 0 and abs(frames / 16000 - clip["duration"]) < 1e-3


# -- 9: slice --random has a bound checked before any work (under ulimit, in a subprocess) --------
def test_9_slice_random_huge_is_refused_up_front(tmp_path: Path) -> None:
    import subprocess
    import sys

    src = manifest(tmp_path / "in", {"a": tone(1.0)})
    out = tmp_path / "out"
    args = "--random 100000000 --duration 0.001 --overlap-ok -q"
    code = f'ulimit -v 4000000; exec "{sys.executable}" -m audioprep slice "{src}" "{out}" {args}'
    proc = subprocess.run(["bash", "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2, proc.stderr
    assert "--random" in proc.stderr and "Traceback" not in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1
    assert not (out / "audio").exists() or not any((out / "audio").iterdir())


# -- 31: run --dry-run runs each stage's own checks -----------------------------------------------
@pytest.mark.parametrize(
    ("stage", "needle"),
    [
        ("slice: {random: 2, chunk: 3}", "--random and --chunk"),
        ('speaker-filter: {enrol: "cluster:abc"}', "--enrol"),
        ("tone: {model: damaged.tonemodel}", "damaged.tonemodel"),
    ],
)
def test_31_dry_run_refuses_what_the_run_refuses(tmp_path: Path, stage: str, needle: str) -> None:
    from audioprep.chains.plan import load_chain, run_chain

    src = manifest(tmp_path / "in", {"a": tone(0.5)})
    (tmp_path / "damaged.tonemodel").write_bytes(b"PK\x03\x04 not a model")
    config = tmp_path / "c.yaml"
    config.write_text(f"input: {src}\nstages:\n  - {stage}\n", encoding="utf-8")
    with pytest.raises(UsageError, match="stage 1") as info:
        run_chain(load_chain(config), tmp_path / "work", dry_run=True, echo=lambda _: None)
    assert needle in str(info.value)
    assert not (tmp_path / "work").exists()


def melody(seconds: float, seed: int, sr: int = 16000) -> np.ndarray:
    """Notes that change every 0.2 s (landmark fingerprints need spectral peaks)."""
    rng = np.random.default_rng(seed)
    step = int(0.2 * sr)
    t = np.arange(step) / sr
    notes = [
        sum(np.sin(2 * np.pi * f * t) for f in rng.uniform(200, 3000, size=3))
        for _ in range(int(seconds / 0.2))
    ]
    return (0.1 * np.concatenate(notes)).astype(np.float32)


# -- 10: repeats, one record with a non-numeric offset ------------------------------------------
@pytest.mark.parametrize("field", ["offset", "source_offset"])
def test_10_a_bad_time_field_is_that_items_error(tmp_path: Path, field: str) -> None:
    from audioprep.run.runner import run_stage
    from audioprep.stages.repeats import RepeatsStage

    jingle = melody(4.0, seed=1)
    items = {f"ep{i}": np.concatenate([jingle, melody(8.0, seed=10 + i)]) for i in range(3)}
    src = manifest(tmp_path / "in", items, ep1={field: "soon"})
    stage = RepeatsStage(RepeatsStage.Params(group_by="all"))
    summary = run_stage(stage, tmp_path / "out", in_dir=src, jobs=1)
    out = tmp_path / "out"
    assert (out / "stage.json").exists() and summary.items_failed == 1
    (error,) = read_jsonl(out / "errors.jsonl")
    assert error["id"] == "ep1" and field in error["reason"] and "number" in error["reason"]
    kept = read_jsonl(out / "manifest.jsonl")
    assert [r["id"] for r in kept] == ["ep0", "ep2"]
    assert all(r["repeats"]["applied"] for r in kept)  # the jingle was cut from the others


# -- 5: ingest of a folder of symlinks gives a self-contained directory ---------------------------
def test_5_ingest_follows_symlinks_into_audio(tmp_path: Path) -> None:
    from audioprep.run.runner import run_stage
    from audioprep.stages.ingest import IngestStage
    from audioprep.stages.trim import TrimStage

    real = tmp_path / "real"
    real.mkdir()
    sf.write(real / "a.wav", tone(1.0), 16000)
    links = tmp_path / "links"
    links.mkdir()
    (links / "rel.wav").symlink_to("../real/a.wav")
    (links / "abs.wav").symlink_to(real / "a.wav")
    out = tmp_path / "out"
    run_stage(IngestStage(IngestStage.Params(sources=(str(links),))), out, jobs=1)
    recs = read_jsonl(out / "manifest.jsonl")
    assert len(recs) == 2
    for rec in recs:
        audio = out / rec["audio"]
        assert audio.is_file() and not audio.is_symlink()
    # the next stage takes every item (none "points outside the manifest directory")
    summary = run_stage(TrimStage(), tmp_path / "trimmed", in_dir=out, jobs=1)
    assert summary.items_ok == 2, read_jsonl(tmp_path / "trimmed" / "errors.jsonl")
    # and the directory moves: nothing in it depends on where it was made
    moved = tmp_path / "elsewhere"
    out.rename(moved)
    assert all((moved / r["audio"]).is_file() for r in recs)


# -- 16: Vosk gives a clip the same text whatever its worker decoded before ----------------------
KOREAN = [
    "안녕하세요 오늘 날씨가 좋습니다",
    "저는 학교에 갑니다 그리고 친구를 만납니다",
    "도서관에서 책을 읽었습니다 아주 재미있었어요",
]


@pytest.mark.slow
def test_16_vosk_text_does_not_depend_on_the_clips_before(tmp_path: Path) -> None:
    import shutil
    import subprocess

    pytest.importorskip("vosk")
    if shutil.which("espeak-ng") is None:
        pytest.skip("espeak-ng is not installed (make espeak, or apt-get install espeak-ng)")
    from audioprep.stages.transcribe import CHECKS
    from audioprep.testing import cli, make_manifest_dir

    files = {}
    for i, text in enumerate(KOREAN):
        files[f"ko{i}"] = tmp_path / f"ko{i}.wav"
        subprocess.run(["espeak-ng", "-v", "ko", "-w", str(files[f"ko{i}"]), text], check=True)
    alone = make_manifest_dir(tmp_path / "alone", {"ko1": files["ko1"]})
    after = make_manifest_dir(tmp_path / "after", {k: files[k] for k in ("ko0", "ko2", "ko1")})
    texts = {}
    skips = [a for c in CHECKS for a in ("--skip-checks", c)]
    for name, src in (("alone", alone), ("after", after)):  # each run a process, as a resume
        out = tmp_path / f"out-{name}"
        cli("transcribe", src, out, "--engine", "vosk", "-j", "1", "-q", *skips, process=True)
        recs = read_jsonl(out / "manifest.jsonl")
        texts[name] = {r["id"]: r["text"] for r in recs}
    assert texts["alone"]["ko1"] and texts["alone"]["ko1"] == texts["after"]["ko1"]


# -- 15: dedupe never rejects through a chain of links ---------------------------------------------
def test_15_dedupe_pairs_count_only_when_they_pass_the_rule_themselves(tmp_path: Path) -> None:
    from audioprep.run.runner import run_stage
    from audioprep.stages.dedupe import DedupeStage

    jingle = melody(4.0, seed=1)
    items = {f"ep{i}": np.concatenate([jingle, melody(6.0 + i, seed=20 + i)]) for i in range(5)}
    items["half"] = np.concatenate([jingle, melody(4.0, seed=40)])  # jingle is half of it
    src = manifest(tmp_path / "in", items)
    run_stage(DedupeStage(), tmp_path / "out", in_dir=src, jobs=1)
    rejected = read_jsonl(tmp_path / "out" / "rejected.jsonl")
    assert all(r["dedupe"]["coverage"] >= 0.5 for r in rejected), rejected
    kept = {r["id"] for r in read_jsonl(tmp_path / "out" / "manifest.jsonl")}
    assert {f"ep{i}" for i in range(5)} <= kept  # five distinct talks stay


# -- 12: dedupe --against a damaged or hostile earlier index ---------------------------------------
def _npz(path: Path, *, compress: bool = False, **arrays: np.ndarray) -> None:
    (np.savez_compressed if compress else np.savez)(path, **arrays)
    if path.suffix != ".npz":
        Path(f"{path}.npz").rename(path)


def _good_arrays() -> dict[str, np.ndarray]:
    return {
        "keys": np.array([1, 2, 3], np.uint32),
        "items": np.array([0, 0, 1], np.int32),
        "times": np.array([5, 6, 7], np.int32),
        "ids": np.array(["x", "y"]),
        "frames": np.array([100, 100]),
        "kept": np.array([True, True]),
    }


def _huge_shape(path: Path) -> None:
    """A member whose header claims 10^12 values (a few bytes of data)."""
    import io
    import zipfile

    header = io.BytesIO()
    np.lib.format.write_array_header_1_0(
        header, {"descr": "<u4", "fortran_order": False, "shape": (10**12,)}
    )
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("keys.npy", np.lib.format.magic(1, 0) + header.getvalue() + b"\0" * 16)
        for name, arr in _good_arrays().items():
            if name != "keys":
                buf = io.BytesIO()
                np.save(buf, arr)
                zf.writestr(f"{name}.npy", buf.getvalue())


INDEX_CASES = {
    "empty": lambda p: p.write_bytes(b""),
    "text": lambda p: p.write_text("not an index\n"),
    "truncated": lambda p: (_npz(p, **_good_arrays()), p.write_bytes(p.read_bytes()[:200])),
    "missing-kept": lambda p: _npz(p, **{k: v for k, v in _good_arrays().items() if k != "kept"}),
    "items-out-of-range": lambda p: _npz(p, **{**_good_arrays(), "items": np.array([0, 0, 9])}),
    "lengths-differ": lambda p: _npz(p, **{**_good_arrays(), "times": np.array([1, 2])}),
    "objects": lambda p: np.savez(p.with_suffix(""), **_good_arrays(), junk=np.array([{}, 1])),
    "huge-shape": _huge_shape,
    "compressed": lambda p: _npz(p, compress=True, **_good_arrays()),
    "two-dimensional": lambda p: _npz(p, **{**_good_arrays(), "frames": np.zeros((2, 2))}),
}


@pytest.mark.parametrize("case", sorted(INDEX_CASES))
def test_12_a_damaged_against_index_is_refused_before_any_work(tmp_path: Path, case: str) -> None:
    import resource

    from audioprep.stages.dedupe import INDEX_FILE, DedupeStage

    earlier = tmp_path / "earlier"
    earlier.mkdir()
    INDEX_CASES[case](earlier / INDEX_FILE)
    stage = DedupeStage(DedupeStage.Params(against=(str(earlier),)))
    soft, hard = resource.getrlimit(resource.RLIMIT_AS)
    resource.setrlimit(resource.RLIMIT_AS, (8 << 30, hard))  # a 10^12 shape must not be tried
    try:
        with pytest.raises(UsageError, match=r"--against .* cannot be used: .*rebuild it"):
            stage.check()
    finally:
        resource.setrlimit(resource.RLIMIT_AS, (soft, hard))


def test_12_the_index_is_saved_atomically_and_read_back(tmp_path: Path) -> None:
    from audioprep.dsp.fingerprint import HashIndex
    from audioprep.stages.dedupe import INDEX_FILE, load_against

    arrays = _good_arrays()
    index = HashIndex(arrays.pop("keys"), arrays.pop("items"), arrays.pop("times"))
    index.save(tmp_path / INDEX_FILE, **arrays)
    assert [p.name for p in tmp_path.iterdir()] == [INDEX_FILE]  # no stray temporary file
    loaded, extra = load_against(tmp_path)
    assert loaded.keys.tolist() == [1, 2, 3] and extra["ids"].tolist() == ["x", "y"]


# -- 1: run --estimate never writes into the chain's input --------------------------------
def test_1_estimate_leaves_the_input_alone(tmp_path: Path, monkeypatch) -> None:
    import hashlib
    import subprocess
    import sys
    import tempfile

    from audioprep.chains.estimate import estimate_chain
    from audioprep.chains.plan import load_chain

    items = {f"a{i}": tone(0.5, freq=200 + 50 * i) for i in range(4)}
    src = manifest(tmp_path / "in", items)
    lines = (src / "manifest.jsonl").read_text().splitlines()
    hostile = [
        {"id": "m", "audio": "manifest.jsonl", "duration": 1.0, "sample_rate": 16000},
        {"id": "abs", "audio": str(src / "audio/a0.wav"), "duration": 1.0, "sample_rate": 16000},
        {"id": "gone", "audio": "audio/gone.wav", "duration": 1.0, "sample_rate": 16000},
    ]
    lines = [lines[0], *(json.dumps({**h, "channels": 1}) for h in hostile), *lines[1:]]
    (src / "manifest.jsonl").write_text("\n".join(lines) + "\n")
    before = hashlib.sha256((src / "manifest.jsonl").read_bytes()).hexdigest()

    # a scratch folder of an estimate killed with -9 (its process is gone)
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "tmp"))
    (tmp_path / "tmp").mkdir()
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    stale = tmp_path / "tmp" / f"audioprep-estimate-{dead.pid}-abcd"
    (stale / "00-sample").mkdir(parents=True)

    config = tmp_path / "c.yaml"
    config.write_text(f"input: {src}\nstages:\n  - trim: {{head: 0.1}}\n")
    rows = estimate_chain(load_chain(config), 7, echo=lambda _: None)
    assert len(rows) == 1
    assert hashlib.sha256((src / "manifest.jsonl").read_bytes()).hexdigest() == before
    assert len((src / "manifest.jsonl").read_text().splitlines()) == 7
    assert list((tmp_path / "tmp").iterdir()) == []  # the stale one gone, its own removed


# -- 2 and 13: tone-train's MODEL target, and hostile tone model files -----------------------------
def _labelled(root: Path, *, nan: bool = False) -> Path:
    rng = np.random.default_rng(0)
    for label in ("hum", "hiss"):
        (root / label).mkdir(parents=True)
        for i in range(3):
            y = tone(1.0, freq=120 + 10 * i) if label == "hum" else 0.1 * rng.standard_normal(16000)
            sf.write(root / label / f"{i}.wav", y.astype(np.float32), 16000, subtype="FLOAT")
    if nan:
        sf.write(root / "hum" / "9.wav", nan_tone(1.0), 16000, subtype="FLOAT")
    return root


@pytest.fixture(scope="module")
def tone_model(tmp_path_factory) -> Path:
    from audioprep.engines.tone.model import train_tone_model

    tmp = tmp_path_factory.mktemp("tone")
    train_tone_model(_labelled(tmp / "lab"), tmp / "m.tone.npz", test_size=0.34, max_iter=50)
    return tmp / "m.tone.npz"


def _fifo(tmp: Path) -> Path:
    os.mkfifo(tmp / "pipe")  # a scratch non-regular file standing in for a device node
    return tmp / "pipe"


TARGETS = {
    "an input wav": (lambda tmp, lab: lab / "hum" / "0.wav", "inside LABELLED_DIR"),
    "a folder": (lambda tmp, lab: tmp, "not a plain file"),
    "a pipe": (lambda tmp, lab: _fifo(tmp), "not a plain file"),
    "no parent": (lambda tmp, lab: tmp / "nope" / "m.npz", "does not exist"),
    "another file": (
        lambda tmp, lab: (tmp / "x.txt").write_text("x") and tmp / "x.txt",
        "not a tone",
    ),
}


@pytest.mark.parametrize("case", sorted(TARGETS))
def test_2_tone_train_refuses_a_model_path_it_would_destroy(tmp_path: Path, case: str) -> None:
    from audioprep.engines.tone.model import train_tone_model

    lab = _labelled(tmp_path / "lab")
    make, needle = TARGETS[case]
    target = make(tmp_path, lab)
    before = {p: p.read_bytes() for p in lab.rglob("*.wav")}
    with pytest.raises(UsageError, match=needle):
        train_tone_model(lab, target, max_iter=5)
    assert {p: p.read_bytes() for p in lab.rglob("*.wav")} == before
    if case == "a pipe":
        assert target.is_fifo()


@pytest.mark.parametrize("test_size", [5.0, 0.99, float("nan"), 0.0])
def test_2_tone_train_refuses_a_test_size_it_cannot_use(tmp_path: Path, test_size) -> None:
    from audioprep.engines.tone.model import train_tone_model

    with pytest.raises(UsageError, match="--test-size"):
        train_tone_model(_labelled(tmp_path / "lab"), tmp_path / "m.npz", test_size=test_size)
    assert not (tmp_path / "m.npz").exists()


def test_2_tone_train_names_a_nan_file(tmp_path: Path) -> None:
    from audioprep.engines.tone.model import train_tone_model
    from audioprep.errors import AudioprepError

    with pytest.raises(AudioprepError, match=r"9\.wav.*NaN"):
        train_tone_model(_labelled(tmp_path / "lab", nan=True), tmp_path / "m.npz", max_iter=5)


def _rewrite(src: Path, dest: Path, *, header=None, compress=False, **arrays) -> Path:
    with np.load(src, allow_pickle=False) as data:
        members = {k: data[k] for k in data.files}
    if header is not None:
        text = header if isinstance(header, str) else json.dumps(header)
        members["header"] = np.frombuffer(text.encode(), dtype=np.uint8)
    members.update(arrays)
    with open(dest, "wb") as fh:
        (np.savez_compressed if compress else np.savez)(fh, **members)
    return dest


def _header(src: Path) -> dict:
    with np.load(src, allow_pickle=False) as data:
        return json.loads(bytes(data["header"]).decode())


MODEL_CASES = {
    "header-list": lambda m, d: _rewrite(m, d, header=[1, 2]),
    "header-string": lambda m, d: _rewrite(m, d, header='"x"'),
    "header-deep": lambda m, d: _rewrite(m, d, header="[" * 200_000 + "]" * 200_000),
    "bomb": lambda m, d: _rewrite(m, d, compress=True, w9=np.zeros((20000, 20000), np.uint8)),
    "unknown-activation": lambda m, d: _rewrite(m, d, header={**_header(m), "activation": "x"}),
    "labels-misfit": lambda m, d: _rewrite(m, d, header={**_header(m), "labels": ["a", "b", "c"]}),
    "duplicate-labels": lambda m, d: _rewrite(m, d, header={**_header(m), "labels": ["a", "a"]}),
    "rate-0": lambda m, d: _rewrite(m, d, header={**_header(m), "sample_rate": 0}),
    "rate-2e9": lambda m, d: _rewrite(m, d, header={**_header(m), "sample_rate": 2_000_000_000}),
    "rate-1": lambda m, d: _rewrite(m, d, header={**_header(m), "sample_rate": 1}),
    "nan-mean": lambda m, d: _rewrite(m, d, mean=np.full(180, np.nan)),
    "zero-scale": lambda m, d: _rewrite(m, d, scale=np.zeros(180)),
    "inf-weights": lambda m, d: _rewrite(m, d, w0=np.full((180, 256), np.inf)),
    "shapes-do-not-chain": lambda m, d: _rewrite(m, d, w1=np.zeros((7, 2))),
}


def _huge_member(model: Path, dest: Path) -> Path:
    import io
    import zipfile

    header = io.BytesIO()
    np.lib.format.write_array_header_1_0(
        header, {"descr": "<f8", "fortran_order": False, "shape": (10**6, 10**6)}
    )
    with np.load(model, allow_pickle=False) as data, zipfile.ZipFile(dest, "w") as zf:
        for k in data.files:
            buf = io.BytesIO()
            np.save(buf, data[k])
            body = buf.getvalue()
            if k == "w0":
                body = np.lib.format.magic(1, 0) + header.getvalue() + b"\0" * 64
            zf.writestr(f"{k}.npy", body)
    return dest


MODEL_CASES["shape-10^12"] = _huge_member


@pytest.mark.parametrize("case", sorted(MODEL_CASES))
def test_13_a_hostile_tone_model_is_refused_once_before_any_work(
    tmp_path: Path, tone_model: Path, case: str
) -> None:
    import resource

    from audioprep.stages.tone import ToneStage

    bad = MODEL_CASES[case](tone_model, tmp_path / "bad.tone.npz")
    soft, hard = resource.getrlimit(resource.RLIMIT_AS)
    resource.setrlimit(resource.RLIMIT_AS, (8 << 30, hard))  # a bomb must not be inflated
    try:
        with pytest.raises(UsageError, match="not a readable audioprep tone model"):
            ToneStage(ToneStage.Params(model=str(bad))).check()
    finally:
        resource.setrlimit(resource.RLIMIT_AS, (soft, hard))


def test_13_a_trained_model_still_loads(tone_model: Path) -> None:
    from audioprep.engines.tone.model import ToneModel

    model = ToneModel.load(tone_model)
    assert sorted(model.labels) == ["hiss", "hum"]
    assert model.predict_proba(np.zeros((1, 180))).shape == (1, 2)


# -- 23-26: Ray: a private Ray, a lost head, a port that is not Ray, loopback only ---------------
def _ray_env(tmp_root: Path) -> dict[str, str]:
    from audioprep.testing import REPO

    (tmp_root / "home").mkdir(exist_ok=True)
    return {
        **os.environ,
        "HOME": str(tmp_root / "home"),  # where Ray would write ~/.ray/auth_token
        "RAY_TMPDIR": str(tmp_root),  # Ray's temporary folder of this test alone
        "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0",
        "RAY_USAGE_STATS_ENABLED": "0",
        "PYTHONPATH": os.pathsep.join([str(REPO / "src"), os.environ.get("PYTHONPATH", "")]),
    }


@pytest.fixture
def ray_tmp():
    """A short private RAY_TMPDIR (Ray's socket paths must stay short), removed afterwards,
    with a check that no recorded cluster file is left in it."""
    import shutil
    import tempfile

    pytest.importorskip("ray")
    root = Path(tempfile.mkdtemp(prefix="rt", dir="/tmp"))
    yield root
    shutil.rmtree(root, ignore_errors=True)


@pytest.mark.slow
def test_23_without_an_address_ray_is_private(tmp_path: Path, ray_tmp: Path) -> None:
    import subprocess
    import sys

    from audioprep.testing.ray_cluster import free_port

    # a cluster `ray start` recorded, now gone: ray.init() would try to join it
    (ray_tmp / "ray").mkdir()
    recorded = ray_tmp / "ray" / "ray_current_cluster"
    recorded.write_text(f"127.0.0.1:{free_port()}")
    src = manifest(tmp_path / "in", {f"a{i}": tone(0.3) for i in range(3)})
    out = tmp_path / "out"
    proc = subprocess.run(
        [sys.executable, "-m", "audioprep", "trim", src, out, "--executor", "ray", "-j", "1", "-q"],
        env=_ray_env(ray_tmp),
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert proc.returncode == 0, proc.stderr
    assert len(read_jsonl(out / "manifest.jsonl")) == 3
    assert recorded.read_text().startswith("127.0.0.1:")  # left as it was, not joined
    assert not (ray_tmp / "home" / ".ray" / "auth_token").exists()  # nothing written in HOME


def test_25_an_address_that_is_not_ray_fails_fast(tmp_path: Path) -> None:
    import http.server
    import threading
    import time

    pytest.importorskip("ray")
    from audioprep.errors import AudioprepError
    from audioprep.run.executors.ray import RayExecutor

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), http.server.SimpleHTTPRequestHandler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        address = f"127.0.0.1:{server.server_address[1]}"
        started = time.monotonic()
        with pytest.raises(AudioprepError, match="answers but is not a Ray cluster"):
            RayExecutor(address, connect_timeout=2.0).check()
        assert time.monotonic() - started < 20
    finally:
        server.shutdown()


@pytest.mark.slow
def test_24_a_head_killed_mid_run_is_one_sentence_and_errors(tmp_path: Path, ray_tmp) -> None:
    import subprocess
    import sys
    import time

    from audioprep.run.executors.ray import ITEM_LOG
    from audioprep.testing.ray_cluster import LocalRayCluster, recorded_cluster_file

    src = manifest(tmp_path / "in", {f"a{i:02d}": tone(0.1) for i in range(40)})
    out = tmp_path / "out"
    code = (
        "import sys\n"
        "from audioprep.run.executors.ray import RayExecutor\n"
        "from audioprep.run.runner import run_stage\n"
        "from audioprep.testing import ToyStage\n"
        "stage = ToyStage(ToyStage.Params(sleep=0.5))\n"
        "s = run_stage(stage, sys.argv[1], in_dir=sys.argv[2], progress=False,\n"
        "              executor=RayExecutor(sys.argv[3]))\n"
        "print(s.line(), file=sys.stderr)\n"
        "sys.exit(s.exit_code)\n"
    )
    env = _ray_env(ray_tmp)
    with LocalRayCluster(nodes=1, cpus_per_node=1, env=env) as cluster:
        driver = subprocess.Popen(
            [sys.executable, "-c", code, str(out), str(src), cluster.address],
            env=env,
            stderr=subprocess.PIPE,
            text=True,
        )
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and len(read_jsonl(out / ITEM_LOG)) < 3:
            time.sleep(0.2)
        killed = time.monotonic()
        cluster.kill_node(0)
        _, stderr = driver.communicate(timeout=120)
        took = time.monotonic() - killed
    assert driver.returncode == 1, stderr
    assert took < 45  # before Ray's own 60-s exit
    assert "Traceback" not in stderr and "failed" in stderr
    assert (out / "stage.json").exists()
    errors = read_jsonl(out / "errors.jsonl")
    assert errors and all("head node is gone" in e["reason"] for e in errors)
    done = read_jsonl(out / "manifest.jsonl")
    assert len(done) + len(errors) == 40
    assert not (ray_tmp / "ray" / "ray_current_cluster").exists()
    assert not recorded_cluster_file().exists() or cluster.address not in (
        recorded_cluster_file().read_text()
    )


# -- 7: fingerprints are computed from a stream, equal to the whole-signal result ----------------
def test_7_streamed_fingerprint_equals_the_whole_signal() -> None:
    from audioprep.dsp.fingerprint import SR, analyse, analyse_stream

    rng = np.random.default_rng(3)
    x = (0.3 * rng.standard_normal(SR * 75 + 13)).astype(np.float32)  # over one block
    whole = analyse(x)
    for parts in (2, 9, 400):
        streamed = analyse_stream(np.array_split(x, parts))
        assert all(np.array_equal(whole[k], streamed[k]) for k in whole)
