"""slice on real segmented audio: clips add up, bounds honoured, samples equal the parent's."""

from __future__ import annotations

import json

import numpy as np
import pytest
import soundfile as sf

from audioprep.testing import LIBRI, MUSANMIX, cli, read_jsonl, require_shared

pytestmark = pytest.mark.slow  # real audio through the CLI, or models


@pytest.fixture(scope="module")
def labelled(tmp_path_factory):
    """musanmix with the reference segmentation, plus a long speech file with made-up segments."""
    require_shared()
    root = tmp_path_factory.mktemp("slice") / "in"
    (root / "audio").mkdir(parents=True)
    y, sr = sf.read(str(MUSANMIX), dtype="int16")
    sf.write(root / "audio" / "mix.wav", y, sr)
    ref = [
        ("music", 0.0, 22.48),
        ("noEnergy", 22.48, 29.08),
        ("noise", 29.08, 52.8),
        ("noEnergy", 52.8, 54.78),
        ("noise", 54.78, 55.74),
        ("noEnergy", 55.74, 63.34),
        ("speech", 63.34, 68.26),
        ("noEnergy", 68.26, 68.92),
        ("speech", 68.92, 71.6),
        ("noEnergy", 71.6, 72.0),
        ("speech", 72.0, 73.82),
        ("noEnergy", 73.82, 74.5),
    ]
    speech = np.concatenate(
        [sf.read(str(f), dtype="int16")[0] for f in sorted((LIBRI / "2609").glob("*.flac"))]
    )
    sf.write(root / "audio" / "talk.flac", speech, 16000)
    talk_len = len(speech) / 16000
    records = [
        {
            "id": "mix",
            "audio": "audio/mix.wav",
            "duration": len(y) / sr,
            "sample_rate": sr,
            "channels": 1,
            "source": {"title": "mix"},
            "segments": [{"label": a, "start": b, "end": c} for a, b, c in ref],
        },
        {
            "id": "talk",
            "audio": "audio/talk.flac",
            "duration": talk_len,
            "sample_rate": 16000,
            "channels": 1,
            "segments": [
                {"label": "speech", "start": 0.0, "end": round(talk_len - 0.3, 2)},
                {"label": "noEnergy", "start": round(talk_len - 0.3, 2), "end": talk_len},
            ],
        },
    ]
    (root / "manifest.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    return root


def check_clips_equal_parent(in_dir, out_dir, clips):
    parents = {r["id"]: r for r in read_jsonl(in_dir / "manifest.jsonl")}
    for clip in clips:
        parent = parents[clip["parent"]]
        whole, sr = sf.read(str(in_dir / parent["audio"]), dtype="int16")
        got, sr2 = sf.read(str(out_dir / clip["audio"]), dtype="int16")
        a = round(clip["offset"] * sr)
        assert sr2 == sr and len(got) == round(clip["duration"] * sr)
        np.testing.assert_array_equal(got, whole[a : a + len(got)])
        assert (
            clip["offset"] >= 0 and clip["offset"] + clip["duration"] <= parent["duration"] + 1e-6
        )


def test_labels_min_max_merge_and_pad(labelled, tmp_path) -> None:
    out = tmp_path / "clips"
    cli(
        "slice",
        labelled,
        out,
        "--labels",
        "speech",
        "--min-duration",
        "2.5",
        "--max-duration",
        "8",
        "--pad",
        "0.2",
        "-q",
    )
    clips = read_jsonl(out / "manifest.jsonl")
    rejected = read_jsonl(out / "rejected.jsonl")
    mix = [c for c in clips if c["parent"] == "mix"]
    talk = [c for c in clips if c["parent"] == "talk"]
    # mix: speech 4.92 s and 2.68 s kept, 1.82 s rejected as too short
    assert [round(c["duration"], 2) for c in mix] == [5.32, 3.08]
    assert [c["offset"] for c in mix] == [63.14, 68.72]
    assert [
        (r["record"]["parent"], r["record"]["label"], round(r["record"]["duration"], 2))
        for r in rejected
    ] == [("mix", "speech", 1.82)]
    assert "shorter than --min-duration 2.5 s" in rejected[0]["reason"]
    # talk: one long speech segment split into pieces <= 8 s (padding included) that tile it
    assert len(talk) >= 5
    assert all(c["duration"] <= 8 + 1e-6 for c in clips)
    assert all(c["duration"] >= 2.5 for c in clips)
    unpadded = [(c["offset"] + (0.2 if c["offset"] > 0 else 0)) for c in talk]
    assert unpadded[0] == pytest.approx(0.0)
    assert (
        talk[-1]["offset"] + talk[-1]["duration"]
        <= read_jsonl(labelled / "manifest.jsonl")[1]["duration"] + 1e-6
    )
    check_clips_equal_parent(labelled, out, clips)
    # fields are passed on, segments re-based to the clip
    assert mix[0]["source"] == {"title": "mix"} and mix[0]["label"] == "speech"
    assert mix[0]["segments"][0] == {"label": "noEnergy", "start": 0.0, "end": 0.2}
    assert "label_seconds" not in mix[0]

    merged = tmp_path / "merged"
    cli(
        "slice",
        labelled,
        merged,
        "--labels",
        "speech",
        "--merge-gap",
        "0.7",
        "--min-duration",
        "1",
        "--max-duration",
        "30",
        "-q",
    )
    mix_merged = [c for c in read_jsonl(merged / "manifest.jsonl") if c["parent"] == "mix"]
    assert [(c["offset"], c["duration"]) for c in mix_merged] == [(63.34, 10.48)]


def test_chunks_tile_the_parent_and_drop_or_keep_the_last(labelled, tmp_path) -> None:
    keep = tmp_path / "keep"
    cli("slice", labelled, keep, "--chunk", "30", "--keep-last", "-q")
    clips = read_jsonl(keep / "manifest.jsonl")
    parents = {r["id"]: r for r in read_jsonl(labelled / "manifest.jsonl")}
    for pid, parent in parents.items():
        mine = [c for c in clips if c["parent"] == pid]
        n = round(parent["duration"] * parent["sample_rate"])
        assert sum(c["slice"]["end_sample"] - c["slice"]["start_sample"] for c in mine) == n
        assert [c["offset"] for c in mine] == [30.0 * i for i in range(len(mine))]
    check_clips_equal_parent(labelled, keep, clips)

    drop = tmp_path / "drop"
    cli("slice", labelled, drop, "--chunk", "30", "-q")
    assert all(c["duration"] == 30.0 for c in read_jsonl(drop / "manifest.jsonl"))
    rejected = read_jsonl(drop / "rejected.jsonl")
    assert {r["record"]["parent"] for r in rejected} == {"mix", "talk"}
    assert all("--keep-last keeps it" in r["reason"] for r in rejected)


def test_slice_without_segments_fails_clearly(tmp_path) -> None:
    require_shared()
    raw = tmp_path / "raw"
    cli("ingest", MUSANMIX, raw, "-q")
    proc = cli("slice", raw, tmp_path / "s", "-q", check=False)
    assert proc.returncode == 1
    assert (
        "run `audioprep segment` first" in read_jsonl(tmp_path / "s" / "errors.jsonl")[0]["reason"]
    )
    cli("slice", raw, tmp_path / "c", "--chunk", "10", "-q")
    assert len(read_jsonl(tmp_path / "c" / "manifest.jsonl")) == 7


def test_bad_slice_options_exit_2(labelled, tmp_path) -> None:
    for args in (
        ["--max-duration", "1", "--pad", "0.5"],
        ["--min-duration", "20"],
        ["--chunk", "0"],
        ["--labels", ","],
    ):
        proc = cli("slice", labelled, tmp_path / "x", *args, check=False)
        assert proc.returncode == 2, args


def test_a_corrupt_file_fails_alone(labelled, tmp_path) -> None:
    bad = tmp_path / "in"
    import shutil

    shutil.copytree(labelled, bad)
    (bad / "audio" / "junk.wav").write_bytes(b"RIFF\x00\x00\x00\x00WAVEnot really" * 8)
    with open(bad / "manifest.jsonl", "a") as fh:
        fh.write(
            json.dumps(
                {
                    "id": "junk",
                    "audio": "audio/junk.wav",
                    "duration": 3.0,
                    "sample_rate": 16000,
                    "channels": 1,
                    "segments": [],
                }
            )
            + "\n"
        )
    proc = cli("slice", bad, tmp_path / "out", "--chunk", "30", "-q", check=False)
    assert proc.returncode == 1
    errors = read_jsonl(tmp_path / "out" / "errors.jsonl")
    assert [(e["id"], e["reason"][:26]) for e in errors] == [("junk", "not a readable audio file ")]
    assert {c["parent"] for c in read_jsonl(tmp_path / "out" / "manifest.jsonl")} == {"mix", "talk"}
