"""Declared record fields reach the exports: hf and csv carry what quality, loudness and
transcribe add (objects flattened, lists as JSON), read from Stage.record_fields."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest

from audioprep.exports import export
from audioprep.exports._base import declared_fields
from audioprep.manifests.fields import row
from audioprep.run.runner import run_stage
from audioprep.stages.loudness import LoudnessStage
from audioprep.stages.quality import QualityStage
from audioprep.testing import arrays_manifest_dir, read_jsonl

SR = 16000


@pytest.fixture(scope="module")
def scored(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Three clips scored by `quality` (signal metrics) and normalised by `loudness`; the
    first also carries the text_issues transcribe writes under --annotate-only."""
    tmp = tmp_path_factory.mktemp("fields")
    rng = np.random.default_rng(0)
    t = np.arange(SR) / SR
    files = {
        f"c{i}": (
            (0.05 * (i + 1) * np.sin(2 * np.pi * 220 * t) + 0.01 * rng.standard_normal(SR)).astype(
                np.float32
            ),
            SR,
        )
        for i in range(3)
    }
    src = arrays_manifest_dir(tmp / "in", files)
    run_stage(
        QualityStage(QualityStage.Params(dnsmos=False)),
        tmp / "q",
        in_dir=src,
        jobs=1,
        progress=False,
    )
    run_stage(LoudnessStage(), tmp / "l", in_dir=tmp / "q", jobs=1, progress=False)
    manifest = tmp / "l" / "manifest.jsonl"
    records = read_jsonl(manifest)
    records[0]["text_issues"] = ["loop: the same 3 words 5 times"]
    manifest.write_text("".join(json.dumps(r) + "\n" for r in records))
    return tmp / "l"


def test_every_stage_declaration_is_complete() -> None:
    fields = {f.name: f for f in declared_fields()}
    assert {"quality", "loudness", "text_issues", "speaker_similarity"} <= set(fields)
    assert fields["quality"].export == "flatten" and fields["text_issues"].export == "json"
    for f in fields.values():
        assert f.help, f.name
        for m in f.members:
            assert m.help, (f.name, m.name)


@pytest.mark.slow
def test_the_hf_export_of_a_quality_scored_directory_carries_the_quality_fields(
    scored: Path, tmp_path: Path
) -> None:
    datasets = pytest.importorskip("datasets")
    export(scored, tmp_path / "hf", fmt="hf")
    ds = datasets.load_dataset("audiofolder", data_dir=str(tmp_path / "hf"), split="train")
    records = {r["id"]: r for r in read_jsonl(scored / "manifest.jsonl")}
    for column in (
        "quality_snr_db",
        "quality_bandwidth_hz",
        "quality_loudness_lufs",
        "loudness_gain_db",
        "loudness_output_lufs",
        "text_issues",
    ):
        assert column in ds.column_names, column
    for item in ds:
        rec = records[item["id"]]
        assert item["quality_snr_db"] == pytest.approx(rec["quality"]["snr_db"])
        assert item["quality_clipping"] == pytest.approx(rec["quality"]["clipping"])
        assert item["loudness_gain_db"] == pytest.approx(rec["loudness"]["gain_db"])
        assert item["loudness_limited"] == rec["loudness"]["limited"]
    issues = {item["id"]: item["text_issues"] for item in ds}
    assert json.loads(issues["c0"]) == ["loop: the same 3 words 5 times"]
    assert issues["c1"] is None


def test_the_csv_export_carries_them_too(scored: Path, tmp_path: Path) -> None:
    export(scored, tmp_path / "csv", fmt="csv")
    with open(tmp_path / "csv" / "metadata.csv", newline="") as fh:
        rows = {r["item_id"]: r for r in csv.DictReader(fh)}
    records = {r["id"]: r for r in read_jsonl(scored / "manifest.jsonl")}
    for item_id, r in rows.items():
        assert float(r["quality_snr_db"]) == pytest.approx(records[item_id]["quality"]["snr_db"])
        assert float(r["loudness_gain_db"]) == pytest.approx(
            records[item_id]["loudness"]["gain_db"]
        )
    assert json.loads(rows["c0"]["text_issues"]) == ["loop: the same 3 words 5 times"]
    assert "speaker_similarity" not in rows["c0"]  # no record carries it: no empty column


def test_flattening_takes_declared_members_only_and_never_nan() -> None:
    quality = next(f for f in declared_fields() if f.name == "quality")
    out = row([quality], {"quality": {"snr_db": float("nan"), "bandwidth_hz": 8000, "x": 1}})
    assert out["quality_snr_db"] is None and out["quality_bandwidth_hz"] == 8000
    assert "quality_x" not in out
    assert row([quality], {"quality": "not an object"})["quality_snr_db"] is None


def test_the_report_draws_the_declared_numbers(scored: Path) -> None:
    from audioprep.reports.html import info_table, summarize

    summary = summarize(scored)
    fields = summary["fields"]
    assert fields["quality.snr_db"]["count"] == 3 and fields["loudness.gain_db"]["count"] == 3
    assert sum(fields["quality.snr_db"]["histogram"]["counts"]) == 3
    assert "quality.snr_db" in info_table(summary)
