"""Exports carry `audioprep speakers`' ids: hf, nemo, csv, lhotse, the vctk layout and
--split-by."""

from __future__ import annotations

import csv
import gzip
import json

import pytest

from audioprep.errors import UsageError
from audioprep.exports import export
from audioprep.testing import make_manifest_dir, read_jsonl, sine_file

SPEAKERS = {"a": "spk00", "b": "spk00", "c": "spk01", "d": "spk01", "e": "spk02", "f": "spk03"}


@pytest.fixture
def corpus(tmp_path):
    files = {k: sine_file(tmp_path / f"{k}.wav", seconds=1.0) for k in SPEAKERS}
    extra = {k: {"speaker": s, "text": f"clip {k}"} for k, s in SPEAKERS.items()}
    extra["a"]["speaker_name"] = "host"
    return make_manifest_dir(tmp_path / "in", files, extra=extra)


def test_hf_nemo_csv_carry_the_speaker(corpus, tmp_path):
    export(corpus, tmp_path / "hf", fmt="hf")
    rows = {
        r["file_name"].split("/")[1][:1]: r for r in read_jsonl(tmp_path / "hf" / "metadata.jsonl")
    }
    assert rows["a"]["speaker_id"] == "spk00" and rows["a"]["speaker_name"] == "host"
    assert rows["c"]["speaker_id"] == "spk01" and rows["c"]["speaker_name"] is None
    export(corpus, tmp_path / "nemo", fmt="nemo")
    assert [r["speaker"] for r in read_jsonl(tmp_path / "nemo" / "manifest.json")] == list(
        SPEAKERS.values()
    )
    export(corpus, tmp_path / "csv", fmt="csv")
    with open(tmp_path / "csv" / "metadata.csv", newline="") as fh:
        table = list(csv.DictReader(fh))
    assert [r["speaker"] for r in table] == list(SPEAKERS.values())
    assert table[0]["speaker_name"] == "host"


def test_hf_without_speakers_has_no_speaker_columns(tmp_path):
    src = make_manifest_dir(tmp_path / "in", [sine_file(tmp_path / "x.wav")])
    export(src, tmp_path / "hf", fmt="hf")
    (row,) = read_jsonl(tmp_path / "hf" / "metadata.jsonl")
    assert "speaker_id" not in row


def test_vctk_layout(corpus, tmp_path):
    stats = export(corpus, tmp_path / "v", fmt="vctk")
    assert stats["items"] == 6
    assert sorted(p.name for p in (tmp_path / "v" / "wav").iterdir()) == [
        "spk00",
        "spk01",
        "spk02",
        "spk03",
    ]
    assert (tmp_path / "v" / "wav" / "spk01" / "c.wav").is_file()
    assert (tmp_path / "v" / "txt" / "spk01" / "c.txt").read_text() == "clip c\n"


def test_vctk_leaves_out_records_without_speaker(tmp_path):
    src = make_manifest_dir(
        tmp_path / "in",
        {"x": sine_file(tmp_path / "x.wav"), "y": sine_file(tmp_path / "y.wav")},
        extra={"x": {"speaker": "spk00"}},
    )
    stats = export(src, tmp_path / "v", fmt="vctk")
    assert stats["items"] == 1 and stats["exit_code"] == 1
    (skipped,) = read_jsonl(tmp_path / "v" / "export-errors.jsonl")
    assert "audioprep speakers" in skipped["reason"]


def test_split_by_speaker_keeps_each_speaker_in_one_split(corpus, tmp_path):
    stats = export(corpus, tmp_path / "s", fmt="hf", split_by="speaker", split_ratio="2,1,1")
    seen = {}
    for split in ("train", "dev", "test"):
        for row in read_jsonl(tmp_path / "s" / split / "metadata.jsonl"):
            assert seen.setdefault(row["speaker_id"], split) == split
    assert len(seen) == 4 and stats["items"] == 6
    assert set(seen.values()) == {"train", "dev", "test"}


def test_split_within_speaker_lhotse(corpus, tmp_path):
    pytest.importorskip("lhotse")
    export(corpus, tmp_path / "l", fmt="lhotse", split_by="within-speaker", split_ratio="1,1,0")
    speakers = {}
    for split in ("train", "dev"):
        with gzip.open(tmp_path / "l" / split / "supervisions.jsonl.gz", "rt") as fh:
            sups = [json.loads(line) for line in fh]
        speakers[split] = sorted(s["speaker"] for s in sups)
    assert speakers["train"] == ["spk00", "spk01", "spk02", "spk03"]  # one of each pair
    assert speakers["dev"] == ["spk00", "spk01"]


def test_split_by_refuses_records_without_speaker_and_other_formats(tmp_path, corpus):
    with pytest.raises(UsageError, match="hf or lhotse"):
        export(corpus, tmp_path / "n", fmt="nemo", split_by="speaker")
    with pytest.raises(UsageError, match="three numbers"):
        export(corpus, tmp_path / "n", fmt="hf", split_by="speaker", split_ratio="1,2")
    src = make_manifest_dir(tmp_path / "in2", [sine_file(tmp_path / "x.wav")])
    with pytest.raises(UsageError, match="has no speaker"):
        export(src, tmp_path / "o", fmt="hf", split_by="speaker")
    assert not (tmp_path / "o").exists()
