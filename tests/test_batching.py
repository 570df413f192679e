"""Batching across items (--batch-size): batched results equal one item at a time."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from conftest import LIBRI, MODELS, MUSANMIX, ffmpeg, read_jsonl, require_shared

from audioprep.runner import run_stage


@pytest.fixture(scope="module")
def wavs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An ingested folder: speech of two speakers, the music/noise/speech mix, a 0.5 s clip."""
    require_shared()
    from audioprep.stages.ingest import IngestStage

    root = tmp_path_factory.mktemp("batching")
    files = root / "files"
    files.mkdir()
    for f in (
        sorted((LIBRI / "1688").glob("*.flac"))[:3] + sorted((LIBRI / "1998").glob("*.flac"))[:2]
    ):
        shutil.copy(f, files / f.name)
    shutil.copy(MUSANMIX, files / "musanmix.wav")
    ffmpeg("-i", str(MUSANMIX), "-t", "0.5", str(files / "short.wav"))  # under one CNN patch
    out = root / "ingest"
    run_stage(IngestStage(IngestStage.Params(sources=(str(files),))), out, progress=False)
    return out


@pytest.mark.slow
def test_segment_ina_batched_equals_one_item_at_a_time(wavs: Path, tmp_path: Path) -> None:
    from audioprep.stages.segment import SegmentStage

    stage = SegmentStage(SegmentStage.Params(model_dir=str(MODELS), window=30.0))
    run_stage(stage, tmp_path / "one", in_dir=wavs, jobs=1, progress=False)
    run_stage(stage, tmp_path / "four", in_dir=wavs, jobs=1, batch_size=4, progress=False)
    one = read_jsonl(tmp_path / "one" / "manifest.jsonl")
    assert len(one) == 7 and all(r["segments"] for r in one if r["id"] != "short")
    assert (tmp_path / "four" / "manifest.jsonl").read_bytes() == (
        tmp_path / "one" / "manifest.jsonl"
    ).read_bytes()


@pytest.mark.slow
def test_ina_engine_segment_many_equals_segment(wavs: Path) -> None:
    from audioprep.engines.ina import InaEngine

    engine = InaEngine(model_dir=MODELS, threads=1)
    paths = sorted((wavs / "audio").iterdir())
    assert engine.segment_many(paths, window_s=20.0) == [
        engine.segment(p, window_s=20.0) for p in paths
    ]
    assert engine.segment_many([], window_s=20.0) == []
