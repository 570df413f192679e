"""dedupe on real audio: 40 distinct LibriSpeech utterances and altered copies of 10 of them."""

from __future__ import annotations

import json
import random
import shutil
import subprocess

import numpy as np
import pytest
import soundfile as sf

from audioprep.run.runner import run_stage
from audioprep.stages.dedupe import INDEX_FILE, DedupeStage
from audioprep.stages.ingest import IngestStage
from audioprep.testing import LIBRI, cli, read_jsonl, require_shared

SR = 16000


def _ff(*args: str) -> None:
    subprocess.run(["ffmpeg", "-nostdin", "-v", "error", "-y", *args], check=True)


def _ingest(folder, out):
    run_stage(IngestStage(IngestStage.Params(sources=(str(folder),))), out, progress=False, jobs=2)
    return {
        r["source"]["path"].rsplit("/", 1)[1].rsplit(".", 1)[0]: r["id"]
        for r in read_jsonl(out / "manifest.jsonl")
    }


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    """Files named by a shuffled number (so copies come before or after their original);
    returns the folder, the name of each original, and the expected outcome per copy."""
    require_shared()
    tmp = tmp_path_factory.mktemp("dedupe")
    src = tmp / "files"
    src.mkdir()
    utts = {s.name: sorted(s.glob("*.flac")) for s in sorted(LIBRI.iterdir()) if s.is_dir()}
    distinct = [f for fs in utts.values() for f in fs[:7]][:40]  # 6-7 per speaker
    spare = [f for fs in utts.values() for f in fs[7:]]
    long_enough = [f for f in distinct if sf.info(str(f)).duration >= 7.0]
    names = iter(random.Random(15).sample(range(100, 999), 60))
    original = {}
    for f in distinct:
        name = f"u{next(names)}"
        shutil.copy(f, src / f"{name}.flac")
        original[f] = name
    chosen = long_enough[:10]
    expect = {}  # copy name -> (kept name, rejected name, overlap seconds)

    def copy(i, how):
        f = chosen[i]
        name = f"u{next(names)}"
        dur = sf.info(str(f)).duration
        if how == "mp3":
            _ff("-i", str(f), "-b:a", "48k", str(src / f"{name}.mp3"))
            expect[name] = (original[f], name, dur)
        elif how == "8k":
            _ff("-i", str(f), "-ar", "8000", str(tmp / "8k.wav"))
            _ff("-i", str(tmp / "8k.wav"), "-ar", "16000", str(src / f"{name}.flac"))
            expect[name] = (original[f], name, dur)
        elif how == "-6dB":
            x, _ = sf.read(str(f), dtype="float32")
            sf.write(str(src / f"{name}.flac"), x * 10 ** (-6 / 20), SR)
            expect[name] = (original[f], name, dur)
        elif how == "cut2":
            x, _ = sf.read(str(f), dtype="int16")
            sf.write(str(src / f"{name}.wav"), x[2 * SR :], SR)
            expect[name] = (original[f], name, dur - 2)
        elif how == "embedded":
            parts = [sf.read(str(g), dtype="int16")[0] for g in (spare[0], f, spare[1])]
            sf.write(str(src / f"{name}.flac"), np.concatenate(parts), SR)
            expect[name] = (name, original[f], dur)  # the longer file is kept
        elif how == "8k-mp3-tail":
            _ff(
                "-i",
                str(f),
                "-ar",
                "8000",
                "-b:a",
                "32k",
                "-t",
                f"{dur - 1:.3f}",
                str(src / f"{name}.mp3"),
            )
            expect[name] = (original[f], name, dur - 1)

    for i, how in enumerate(
        ["mp3", "mp3", "8k", "8k", "-6dB", "-6dB", "cut2", "cut2", "embedded", "8k-mp3-tail"]
    ):
        copy(i, how)
    ids = _ingest(src, tmp / "raw")
    return tmp, ids, expect, chosen, spare


@pytest.mark.slow
@pytest.mark.parametrize("batch", [None, 7])
def test_finds_all_ten_keeps_the_right_one_and_no_false_pair(corpus, batch, monkeypatch) -> None:
    """Searched in one batch (the default, 256), then in batches of 7: each item then meets
    only the first copy of an earlier batch's audio, and the outcome must not change."""
    tmp, ids, expect, _, _ = corpus
    if batch:
        import audioprep.dsp.dedupe

        monkeypatch.setattr(audioprep.dsp.dedupe, "BATCH", batch)
    out = tmp / f"out-{batch}" if batch else tmp / "out"
    summary = run_stage(DedupeStage(), out, in_dir=tmp / "raw", progress=False, jobs=2)
    assert summary.items_failed == 0 and summary.items_in == 50
    rejected = {r["id"]: r for r in read_jsonl(out / "rejected.jsonl")}
    want = {ids[rej]: (ids[kept], overlap) for kept, rej, overlap in expect.values()}
    assert set(rejected) == set(want), (sorted(rejected), sorted(want))
    for rid, (kept, overlap) in want.items():
        r = rejected[rid]
        assert r["dedupe"]["duplicate_of"] == kept, (rid, r["reason"])
        assert r["reason"].startswith(f"duplicate of {kept} (overlap ")
        assert r["dedupe"]["overlap"] == pytest.approx(overlap, abs=0.3), r
    decision = json.loads((out / "decision.json").read_text())
    assert len(decision["pairs"]) == 10  # zero false pairs among the 40 distinct utterances
    kept = read_jsonl(out / "manifest.jsonl")
    assert len(kept) == 40
    assert (out / INDEX_FILE).is_file()
    cut = next(
        r for r in rejected.values() if r["record"]["duration"] < 10 and r["dedupe"]["offset"] > 1.5
    )  # a copy with 2 s cut from the start
    assert cut["dedupe"]["offset"] == pytest.approx(2.0, abs=0.05)
    assert "Duplicates" in DedupeStage.report_section(out)


@pytest.mark.slow
def test_against_an_earlier_corpus(corpus) -> None:
    tmp, ids, expect, chosen, spare = corpus
    if not (tmp / "out" / INDEX_FILE).is_file():
        run_stage(DedupeStage(), tmp / "out", in_dir=tmp / "raw", progress=False, jobs=2)
    later = tmp / "later"
    later.mkdir()
    _ff("-i", str(chosen[0]), "-b:a", "64k", str(later / "again.mp3"))  # a re-upload
    for g in spare[2:5]:
        shutil.copy(g, later / g.name)
    new_ids = _ingest(later, tmp / "later-raw")
    cli("dedupe", tmp / "later-raw", tmp / "later-out", "--against", tmp / "out", "-q", "-j", 1)
    rejected = read_jsonl(tmp / "later-out" / "rejected.jsonl")
    assert [r["id"] for r in rejected] == [new_ids["again"]]
    original_id = ids[next(iter(expect.values()))[0]]  # the first copy is of chosen[0]
    assert rejected[0]["reason"].startswith(f"duplicate of {original_id} in {tmp / 'out'} (overlap")
    assert len(read_jsonl(tmp / "later-out" / "manifest.jsonl")) == 3
