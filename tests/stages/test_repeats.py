"""repeats on real audio: six episodes with a jingle, an ad and an outro put in at known places."""

from __future__ import annotations

import json

import numpy as np
import pytest
import soundfile as sf

from audioprep.run.runner import run_stage
from audioprep.stages.ingest import IngestStage
from audioprep.stages.repeats import RepeatsStage
from audioprep.testing import DATA, read_jsonl, require_shared, union_spans

TOLERANCE = 0.2  # seconds, each boundary
EXTRA = 0.5  # seconds of non-repeat audio cut, at most, in all


def _minus(a, b):
    """Seconds of the spans ``a`` outside the spans ``b``."""
    total = sum(e - s for s, e in union_spans(a))
    inter = sum(
        max(0.0, min(e1, e2) - max(s1, s2))
        for s1, e1 in union_spans(a)
        for s2, e2 in union_spans(b)
    )
    return total - inter


@pytest.fixture(scope="module")
def episodes(tmp_path_factory):
    require_shared()
    from repeats_corpus import build_episodes

    tmp = tmp_path_factory.mktemp("repeats")
    truth = build_episodes(DATA, tmp / "episodes", tmp)
    run_stage(
        IngestStage(IngestStage.Params(sources=(str(tmp / "episodes"),))),
        tmp / "raw",
        progress=False,
        jobs=1,
    )
    ids = {r["id"]: r for r in read_jsonl(tmp / "raw" / "manifest.jsonl")}
    by_name = {next(i for i in ids if i.startswith(name)): name for name in truth}
    return tmp, truth, by_name


@pytest.mark.slow
def test_cuts_jingle_ad_and_outro_within_tolerance(episodes) -> None:
    tmp, truth, by_name = episodes
    summary = run_stage(RepeatsStage(), tmp / "out", in_dir=tmp / "raw", progress=False, jobs=2)
    assert summary.items_failed == 0
    out = {r["id"]: r for r in read_jsonl(tmp / "out" / "manifest.jsonl")}
    raw = {r["id"]: r for r in read_jsonl(tmp / "raw" / "manifest.jsonl")}
    extra_total = 0.0
    for item_id, name in by_name.items():
        rec = out[item_id]
        cuts = rec["repeats"]["cuts"]
        true = truth[name]
        assert len(cuts) == len(true), (name, cuts, true)
        for cut, (s, e, label) in zip(cuts, true, strict=True):
            assert abs(cut["start"] - s) <= TOLERANCE and abs(cut["end"] - e) <= TOLERANCE, (
                name,
                cut,
                (s, e),
            )
            assert cut["matched"]["id"] != item_id and cut["segment"].startswith("R")
            assert (
                cut["where"]
                in {"jingle": ("head",), "ad": ("middle", "tail"), "outro": ("tail",)}[label]
            )
        extra_total += _minus([(c["start"], c["end"]) for c in cuts], [(s, e) for s, e, _ in true])
        x, sr = sf.read(str(tmp / "out" / rec["audio"]), dtype="int16")
        y, _ = sf.read(str(tmp / "raw" / raw[item_id]["audio"]), dtype="int16")
        if not true:  # untouched: the same samples, the same record apart from the annotation
            assert np.array_equal(x, y) and rec["duration"] == raw[item_id]["duration"]
            assert rec["repeats"] == {"cuts": [], "removed": 0.0, "applied": False}
            continue
        # sample-exact: the output is the input without the recorded sample ranges
        keep = np.ones(len(y), bool)
        for a, b in rec["repeats"]["samples"]:
            keep[a:b] = False
        assert np.array_equal(x, y[keep])
        assert rec["duration"] == pytest.approx(len(x) / sr, abs=1e-6)
        head = rec["repeats"]["samples"][0][1] if rec["repeats"]["samples"][0][0] == 0 else 0
        assert rec["offset"] == pytest.approx(head / sr, abs=1e-6)
    assert extra_total <= EXTRA, extra_total
    decision = json.loads((tmp / "out" / "decision.json").read_text())
    assert sorted(s["items"] for s in decision["segments"]) == [2, 3, 4]
    html = RepeatsStage.report_section(tmp / "out")
    assert "Repeats" in html and "R1" in html


@pytest.mark.slow
def test_where_head_and_dry_run(episodes) -> None:
    tmp, truth, by_name = episodes
    stage = RepeatsStage(RepeatsStage.Params(where=("head",), dry_run=True, min_items=3))
    run_stage(stage, tmp / "dry", in_dir=tmp / "raw", progress=False, jobs=1)
    out = {r["id"]: r for r in read_jsonl(tmp / "dry" / "manifest.jsonl")}
    raw = {r["id"]: r for r in read_jsonl(tmp / "raw" / "manifest.jsonl")}
    for item_id, name in by_name.items():
        rec = out[item_id]
        assert rec["duration"] == raw[item_id]["duration"] and not rec["repeats"]["applied"]
        want = [t for t in truth[name] if t[2] == "jingle"]  # the outro is in 2 items only
        assert [c["where"] for c in rec["repeats"]["cuts"]] == ["head"] * len(want)


@pytest.mark.slow
def test_group_by_field_keeps_groups_apart(episodes) -> None:
    tmp, truth, by_name = episodes
    # each episode in its own group: nothing recurs within a group
    stage = RepeatsStage(RepeatsStage.Params(group_by="id"))
    run_stage(stage, tmp / "solo", in_dir=tmp / "raw", progress=False, jobs=1)
    out = read_jsonl(tmp / "solo" / "manifest.jsonl")
    assert len(out) == 6 and all(r["repeats"]["cuts"] == [] for r in out)


@pytest.mark.slow
def test_same_words_in_another_recording_are_not_a_repeat(tmp_path) -> None:
    """A repeat must match as audio: the same sentence read again (simulated here by the same
    recording 3 % higher and 5 % slower, which is still far closer than a real re-reading) is
    not cut, while the very same recording at another gain is."""
    require_shared()
    import subprocess

    from audioprep.dsp.fingerprint import analyse
    from audioprep.dsp.repeats import recurring_segments
    from audioprep.engines.fingerprint.landmarks import decode_8k

    src = DATA / "librispeech-test-other" / "2414" / "2414-128291-0002.flac"
    reread = tmp_path / "reread.wav"
    subprocess.run(
        [
            "ffmpeg",
            "-nostdin",
            "-v",
            "error",
            "-y",
            "-i",
            str(src),
            "-af",
            "asetrate=16480,aresample=16000,atempo=0.9246",
            str(reread),
        ],
        check=True,
    )
    x = decode_8k(src)[0]
    y = decode_8k(reread)[0]
    same = [analyse(x), analyse(0.3 * x)]
    words = [analyse(x), analyse(y)]
    assert len(recurring_segments(same, min_items=2, min_frames=125)) == 1
    assert recurring_segments(words, min_items=2, min_frames=62) == []


def test_a_head_cut_moves_offset_and_source_offset_sample_exactly(tmp_path) -> None:
    from audioprep.core.stage import ItemContext

    sr = 22050
    x = (np.arange(sr * 3) % 251).astype(np.int16)
    (tmp_path / "in" / "audio").mkdir(parents=True)
    (tmp_path / "out" / "audio").mkdir(parents=True)
    sf.write(str(tmp_path / "in" / "audio" / "a.wav"), x, sr, subtype="PCM_16")
    record = {
        "id": "a",
        "audio": "audio/a.wav",
        "duration": 3.0,
        "sample_rate": sr,
        "channels": 1,
        "offset": 5.0,
        "source_offset": 65.0,
    }
    cuts = [
        {"start": 0.0, "end": 1.0, "where": "head", "segment": "R1", "matched": {}},
        {"start": 2.0, "end": 2.5, "where": "middle", "segment": "R2", "matched": {}},
    ]
    ctx = ItemContext(stage_name="repeats", in_dir=tmp_path / "in", out_dir=tmp_path / "out")
    (out,) = RepeatsStage().finish(record, {}, {"cuts": {"a": cuts}, "dry_run": False}, ctx)
    y, _ = sf.read(str(tmp_path / "out" / out["audio"]), dtype="int16")
    assert np.array_equal(y, np.concatenate([x[sr : 2 * sr], x[int(2.5 * sr) :]]))
    assert out["offset"] == 6.0 and out["source_offset"] == 66.0
    assert out["duration"] == pytest.approx(1.5) and out["repeats"]["removed"] == pytest.approx(1.5)
    assert out["repeats"]["samples"] == [[0, sr], [2 * sr, int(2.5 * sr)]]
