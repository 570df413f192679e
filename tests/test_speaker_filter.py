"""speaker-filter with the real Resemblyzer on the real LibriSpeech speakers in ../shared."""

from __future__ import annotations

import json
import shutil

import pytest

from audioprep.testing import LIBRI, cli, ffmpeg, read_jsonl, require_shared

pytestmark = pytest.mark.slow  # real audio through the CLI, or models


SPEAKERS = ("1688", "1998", "2609", "2033", "2414", "3005")


def utterances(speaker: str) -> list:
    return sorted((LIBRI / speaker).glob("*.flac"))


@pytest.mark.parametrize("target", ["1688", "1998", "2609"])
def test_precision_and_recall_with_three_reference_utterances(tmp_path, target) -> None:
    require_shared()
    refs = utterances(target)[:3]
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    for speaker in SPEAKERS:
        for f in utterances(speaker):
            if f not in refs:
                shutil.copy(f, corpus / f.name)
    cli("ingest", corpus, tmp_path / "raw", "-q")
    cli(
        "speaker-filter",
        tmp_path / "raw",
        tmp_path / "out",
        *sum((["--reference", r] for r in refs), []),
        "-q",
    )
    kept = {r["id"].split("-")[0] for r in read_jsonl(tmp_path / "out" / "manifest.jsonl")}
    kept_ids = [r["id"] for r in read_jsonl(tmp_path / "out" / "manifest.jsonl")]
    true_pos = sum(i.startswith(target + "-") for i in kept_ids)
    precision = true_pos / max(1, len(kept_ids))
    recall = true_pos / 7
    assert precision >= 0.95 and recall >= 0.95, (precision, recall, kept)
    rejected = read_jsonl(tmp_path / "out" / "rejected.jsonl")
    assert len(kept_ids) + len(rejected) == 57
    assert all("below the threshold 0.750" in r["reason"] for r in rejected)
    assert all(r["speaker_similarity"] < 0.75 for r in rejected)
    assert all(
        r["speaker_similarity"] >= 0.75 for r in read_jsonl(tmp_path / "out" / "manifest.jsonl")
    )


def test_dominant_voice_without_references(tmp_path) -> None:
    require_shared()
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    host = utterances("2033")
    guests = [utterances(s)[i] for i, s in enumerate(("1688", "1998", "2609", "2414", "3005"))]
    for f in host + guests:
        shutil.copy(f, corpus / f.name)
    cli("ingest", corpus, tmp_path / "raw", "-q")
    cli("speaker-filter", tmp_path / "raw", tmp_path / "out", "--enrol", "dominant", "-q")
    kept = [r["id"] for r in read_jsonl(tmp_path / "out" / "manifest.jsonl")]
    assert sum(k.startswith("2033-") for k in kept) >= 9
    assert sum(not k.startswith("2033-") for k in kept) <= 1
    decision = json.loads((tmp_path / "out" / "decision.json").read_text())
    assert decision["enrol"] == "dominant" and decision["dominant_cluster_size"] >= 9


def test_scores_do_not_depend_on_the_rest_of_the_batch_and_auto_report(tmp_path) -> None:
    require_shared()
    refs = utterances("2414")[:3]
    big, small = tmp_path / "big", tmp_path / "small"
    big.mkdir()
    small.mkdir()
    for s in SPEAKERS:
        for f in utterances(s)[3:]:
            shutil.copy(f, big / f.name)
    for f in utterances("2414")[3:6] + utterances("3005")[3:5]:
        shutil.copy(f, small / f.name)
    flac = utterances("2414")[5]
    ffmpeg("-i", str(flac), "-t", "0.5", str(small / "tiny.wav"))
    for d in (big, small):
        cli("ingest", d, tmp_path / f"{d.name}-raw", "-q")
    args = [a for r in refs for a in ("--reference", r)]
    cli(
        "speaker-filter",
        tmp_path / "big-raw",
        tmp_path / "big-out",
        *args,
        "--threshold",
        "auto",
        "--report",
        "-q",
        "-j",
        "2",
    )
    cli(
        "speaker-filter",
        tmp_path / "small-raw",
        tmp_path / "small-out",
        *args,
        "-q",
        "-j",
        "1",
        check=False,
    )
    scores = {}
    for name in ("big-out", "small-out"):
        d = tmp_path / name
        by_id = json.loads((d / "decision.json").read_text())["scores"]
        scores[name] = {i.rsplit("-", 1)[0]: s for i, s in by_id.items()}  # ids hash the path
    shared = set(scores["big-out"]) & set(scores["small-out"])
    assert len(shared) == 5
    assert all(scores["big-out"][i] == scores["small-out"][i] for i in shared)
    # the too-short item is rejected with that reason, not scored
    rejected = read_jsonl(tmp_path / "small-out" / "rejected.jsonl")
    tiny = [r for r in rejected if r["id"].startswith("tiny-")]
    assert tiny and tiny[0]["reason"].startswith("too short to embed reliably")
    # --threshold auto on clearly bimodal scores: the valley, and a report to look at
    decision = json.loads((tmp_path / "big-out" / "decision.json").read_text())
    assert decision["auto"]["bimodal"] is True and 0.6 < decision["threshold"] < 0.85
    report = json.loads((tmp_path / "big-out" / "speaker_report.json").read_text())
    assert report["n"] == 42 and sum(report["histogram"]["counts"]) == 42
    assert (tmp_path / "big-out" / "speaker_report.png").stat().st_size > 5000


def test_bad_options(tmp_path) -> None:
    require_shared()
    cli("ingest", utterances("1688")[0], tmp_path / "raw", "-q")
    assert cli("speaker-filter", tmp_path / "raw", tmp_path / "o", check=False).returncode == 2
    proc = cli(
        "speaker-filter",
        tmp_path / "raw",
        tmp_path / "o",
        "--enrol",
        "dominant",
        "--threshold",
        "high",
        check=False,
    )
    assert proc.returncode == 2 and "not a number or auto" in proc.stderr


def test_enrol_from_clips_of_a_manifest(tmp_path) -> None:
    require_shared()
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    for s in ("1998", "3005"):
        for f in utterances(s)[:5]:
            shutil.copy(f, corpus / f.name)
    cli("ingest", corpus, tmp_path / "raw", "-q")
    ids = [
        r["id"]
        for r in read_jsonl(tmp_path / "raw" / "manifest.jsonl")
        if r["id"].startswith("3005-")
    ][:2]
    cli(
        "speaker-filter",
        tmp_path / "raw",
        tmp_path / "out",
        "--reference-manifest",
        tmp_path / "raw",
        "--reference-ids",
        ",".join(ids),
        "-q",
    )
    kept = [r["id"] for r in read_jsonl(tmp_path / "out" / "manifest.jsonl")]
    assert sorted(k[:4] for k in kept) == ["3005"] * 5
    proc = cli(
        "speaker-filter",
        tmp_path / "raw",
        tmp_path / "o2",
        "--reference-manifest",
        tmp_path / "raw",
        "--reference-ids",
        "nope",
        check=False,
    )
    assert proc.returncode == 2 and "nope" in proc.stderr
