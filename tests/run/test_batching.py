"""Batching across items (--batch-size): batched results equal one item at a time."""

from __future__ import annotations

import dataclasses
import shutil
from pathlib import Path

import pytest

from audioprep.core.stage import SourceStage
from audioprep.errors import ItemError
from audioprep.run.runner import run_stage
from audioprep.testing import LIBRI, MODELS, MUSANMIX, ffmpeg, read_jsonl, require_shared


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
    from audioprep.engines.segment.ina import InaEngine

    engine = InaEngine(model_dir=MODELS, threads=1)
    paths = sorted((wavs / "audio").iterdir())
    assert engine.segment_many(paths, window_s=20.0) == [
        engine.segment(p, window_s=20.0) for p in paths
    ]
    assert engine.segment_many([], window_s=20.0) == []


class CountingStage(SourceStage):
    """Items 0..n-1; ``process_batch`` tags each record with its batch's size; item ``bad``
    fails (the batch is then redone one item at a time)."""

    name = "counting"

    @dataclasses.dataclass(frozen=True)
    class Params:
        n: int = 7
        bad: int = -1

    def inputs(self):
        for i in range(self.params.n):
            yield {"id": f"i{i}", "n": i}

    def process(self, record, ctx):
        if record["n"] == self.params.bad:
            raise ItemError("this one is bad")
        return [{**record, "batch": 1}]

    def process_batch(self, records, ctxs):
        if any(r["n"] == self.params.bad for r in records):
            raise ItemError("a bad item in the batch")
        return [[{**r, "batch": len(records)}] for r in records]


@pytest.mark.parametrize("jobs", [1, 2])
def test_items_go_to_process_batch_in_batches(tmp_path: Path, jobs: int) -> None:
    run_stage(CountingStage(), tmp_path / "out", jobs=jobs, batch_size=3, progress=False)
    records = read_jsonl(tmp_path / "out" / "manifest.jsonl")
    assert [r["id"] for r in records] == [f"i{i}" for i in range(7)]
    assert sorted(r["batch"] for r in records) == [1, 3, 3, 3, 3, 3, 3]


def test_a_failing_batch_is_redone_item_by_item(tmp_path: Path) -> None:
    stage = CountingStage(CountingStage.Params(bad=4))
    summary = run_stage(stage, tmp_path / "out", jobs=1, batch_size=3, progress=False)
    assert summary.items_ok == 6 and summary.items_failed == 1
    errors = read_jsonl(tmp_path / "out" / "errors.jsonl")
    assert [(e["id"], e["reason"]) for e in errors] == [("i4", "this one is bad")]
    batches = {r["id"]: r["batch"] for r in read_jsonl(tmp_path / "out" / "manifest.jsonl")}
    assert batches == {"i0": 3, "i1": 3, "i2": 3, "i3": 1, "i5": 1, "i6": 1}


def test_run_estimate_projects_each_stage_from_a_sample(tmp_path: Path) -> None:
    from audioprep.testing import cli, make_manifest_dir, sine_file

    files = [sine_file(tmp_path / f"f{i}.wav", seconds=2.0) for i in range(6)]
    src = make_manifest_dir(tmp_path / "in", files)
    config = tmp_path / "chain.yaml"
    config.write_text(
        f"input: {src}\nstages:\n  - convert: {{sample-rate: 8000}}\n  - trim: {{head: 0.5}}\n"
    )
    proc = cli("run", config, "--estimate", 2, "--workdir", tmp_path / "w")
    lines = proc.stdout.splitlines()
    assert lines[0].startswith("estimate: 2 of 6 items (4.0 s of 12.0 s); per-item figures scaled")
    rows = {line.split()[0]: line.split() for line in lines[2:]}
    assert rows["01-convert"][1:3] == ["12.0", "s"] and "02-trim" in rows and "total" in rows
    assert not (tmp_path / "w").exists()  # only a scratch folder was used

    from audioprep.chains.estimate import estimate_chain
    from audioprep.chains.plan import load_chain

    est = estimate_chain(load_chain(config), 3, scratch=tmp_path / "s", echo=lambda _: None)
    assert [e.name for e in est] == ["01-convert", "02-trim"]
    assert abs(est[0].hours_kept * 3600 - 12.0) < 0.01  # 6 x 2 s
    assert abs(est[1].hours_kept * 3600 - 9.0) < 0.01  # 6 x 1.5 s
    assert 6 * 32000 < est[0].disk_bytes < 6 * 33000  # 2 s of 8 kHz 16-bit wav per item
