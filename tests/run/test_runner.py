"""The runner: resume, errors, rejects, locks, identity checks, parallel workers."""

from __future__ import annotations

import fcntl
import json
import os
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from audioprep.errors import AudioprepError, UsageError
from audioprep.run.journal import JOURNAL
from audioprep.run.runner import run_stage
from audioprep.testing import ToyStage, read_jsonl


def make_input(root: Path, n: int = 6, extra: list[dict] | None = None) -> Path:
    """A manifest directory of ``n`` tiny wav files, plus raw ``extra`` records."""
    d = root / "in"
    (d / "audio").mkdir(parents=True)
    lines = []
    for i in range(n):
        name = f"audio/item{i}.wav"
        sf.write(d / name, np.zeros(160 * (i + 1), dtype=np.int16), 16000)
        lines.append(
            {
                "id": f"item{i}",
                "audio": name,
                "duration": 0.01 * (i + 1),
                "sample_rate": 16000,
                "channels": 1,
                "keep_me": {"i": i},
            }
        )
    lines += extra or []
    (d / "manifest.jsonl").write_text("".join(json.dumps(x) + "\n" for x in lines))
    return d


def toy(**kw) -> ToyStage:
    return ToyStage(ToyStage.Params(**kw))


def test_passes_fields_and_writes_everything(tmp_path) -> None:
    src = make_input(tmp_path)
    out = tmp_path / "out"
    summary = run_stage(toy(), out, in_dir=src, jobs=1, progress=False)
    assert summary.exit_code == 0 and summary.items_ok == 6
    records = read_jsonl(out / "manifest.jsonl")
    assert [r["id"] for r in records] == [f"item{i}" for i in range(6)]
    assert records[3]["keep_me"] == {"i": 3}  # fields a stage does not own pass through
    for r in records:  # unchanged audio is hard-linked, not copied
        assert os.stat(out / r["audio"]).st_ino == os.stat(src / r["audio"]).st_ino
    stage = json.loads((out / "stage.json").read_text())
    assert stage["stage"] == "toy" and stage["items_in"] == 6 and stage["items_ok"] == 6
    assert stage["hours_in"] == pytest.approx(0.21 / 3600, abs=1e-6)
    assert (out / "errors.jsonl").read_text() == "" and (out / "rejected.jsonl").read_text() == ""


def test_failures_rejections_and_invalid_records(tmp_path) -> None:
    extra = [
        {"id": "evil", "audio": "../../etc/passwd", "duration": 1, "sample_rate": 1, "channels": 1},
        {"id": "abs", "audio": "/etc/passwd", "duration": 1, "sample_rate": 1, "channels": 1},
        {"id": "item0", "audio": "audio/item0.wav", "duration": 1, "sample_rate": 1, "channels": 1},
        {"id": "nofields"},
        {"id": "gone", "audio": "audio/gone.wav", "duration": 1, "sample_rate": 1, "channels": 1},
    ]
    src = make_input(tmp_path, extra=extra)
    with open(src / "manifest.jsonl", "a") as fh:
        fh.write("{not json\n")
    out = tmp_path / "out"
    summary = run_stage(
        toy(fail_ids=("item1",), reject_ids=("item2",)), out, in_dir=src, jobs=1, progress=False
    )
    assert summary.exit_code == 1
    errors = {e["id"]: e["reason"] for e in read_jsonl(out / "errors.jsonl")}
    assert errors["item1"] == "asked to fail"
    assert "points outside" in errors["evil"]
    assert "absolute" in errors["abs"]
    assert "duplicate id" in errors["item0"]
    assert "lacks required field" in errors["nofields"]
    assert "missing" in errors["gone"]
    assert "not valid JSON" in errors["line-12"]
    rejected = read_jsonl(out / "rejected.jsonl")
    assert [(r["id"], r["reason"]) for r in rejected] == [("item2", "asked to reject")]
    ids = [r["id"] for r in read_jsonl(out / "manifest.jsonl")]
    assert ids == ["item0", "item3", "item4", "item5"]
    # nothing disappears: every input line is in exactly one of the three files
    assert len(ids) + len(rejected) + len(errors) == 12
    assert json.loads((out / "stage.json").read_text())["items_failed"] == 7


def test_resume_skips_finished_items_and_retries_failed(tmp_path) -> None:
    src = make_input(tmp_path)
    out = tmp_path / "out"
    run_stage(toy(fail_ids=("item4",)), out, in_dir=src, jobs=1, progress=False)
    journal_lines = (out / JOURNAL).read_text().splitlines()
    assert len(journal_lines) == 7  # the header (the input's stamp) and one line per item
    # the same run again processes only the failed item
    second = run_stage(toy(fail_ids=("item4",)), out, in_dir=src, jobs=1, progress=False)
    assert second.items_resumed == 5 and second.items_failed == 1
    assert len((out / JOURNAL).read_text().splitlines()) == 8


def test_torn_journal_line_is_cut_and_the_result_equals_a_clean_run(tmp_path) -> None:
    src = make_input(tmp_path)
    clean, torn = tmp_path / "clean", tmp_path / "torn"
    run_stage(toy(split=2), clean, in_dir=src, jobs=1, progress=False)
    run_stage(toy(split=2), torn, in_dir=src, jobs=1, progress=False)
    # simulate kill -9 during the write of the 4th journal line, before the final files
    lines = (torn / JOURNAL).read_bytes().splitlines(keepends=True)
    (torn / JOURNAL).write_bytes(b"".join(lines[:4]) + lines[4][:17])  # header + 3 items
    for name in ("manifest.jsonl", "stage.json"):
        (torn / name).unlink()
    summary = run_stage(toy(split=2), torn, in_dir=src, jobs=1, progress=False)
    assert summary.items_resumed == 3
    assert (torn / "manifest.jsonl").read_text() == (clean / "manifest.jsonl").read_text()
    assert sorted(p.name for p in (torn / "audio").iterdir()) == sorted(
        p.name for p in (clean / "audio").iterdir()
    )


def test_orphan_audio_of_unfinished_items_is_removed(tmp_path) -> None:
    src = make_input(tmp_path, n=2)
    out = tmp_path / "out"
    (out / "audio").mkdir(parents=True)
    (out / ".run.json").write_text("{}")
    (out / "audio" / "stray.wav").write_bytes(b"x")
    run_stage(toy(), out, in_dir=src, jobs=1, progress=False, overwrite=True)
    assert sorted(p.name for p in (out / "audio").iterdir()) == ["item0.wav", "item1.wav"]


def test_changed_parameters_are_refused_unless_overwrite(tmp_path) -> None:
    src = make_input(tmp_path, n=2)
    out = tmp_path / "out"
    run_stage(toy(tag="a"), out, in_dir=src, jobs=1, progress=False)
    with pytest.raises(UsageError, match=r"tag: 'a' -> 'b'.*--overwrite"):
        run_stage(toy(tag="b"), out, in_dir=src, jobs=1, progress=False)
    run_stage(toy(tag="b"), out, in_dir=src, jobs=1, progress=False, overwrite=True)
    assert {r["tag"] for r in read_jsonl(out / "manifest.jsonl")} == {"b"}


def test_refuses_out_dir_equal_to_in_dir_and_foreign_dirs(tmp_path) -> None:
    src = make_input(tmp_path, n=1)
    with pytest.raises(UsageError, match="its own input"):
        run_stage(toy(), src, in_dir=src, jobs=1, progress=False)
    foreign = tmp_path / "photos"
    foreign.mkdir()
    (foreign / "cat.jpg").write_bytes(b"x")
    with pytest.raises(UsageError, match="not an audioprep directory"):
        run_stage(toy(), foreign, in_dir=src, jobs=1, progress=False)
    with pytest.raises(AudioprepError, match="no manifest.jsonl"):
        run_stage(toy(), tmp_path / "o", in_dir=foreign, jobs=1, progress=False)


def test_a_second_writer_is_refused(tmp_path) -> None:
    src = make_input(tmp_path, n=1)
    out = tmp_path / "out"
    out.mkdir()
    (out / ".run.json").write_text("{}")
    fd = os.open(out / ".lock", os.O_RDWR | os.O_CREAT)
    fcntl.flock(fd, fcntl.LOCK_EX)
    try:
        with pytest.raises(AudioprepError, match="another audioprep run is writing"):
            run_stage(toy(), out, in_dir=src, jobs=1, progress=False)
    finally:
        os.close(fd)
    assert not (out / "manifest.jsonl").exists()


def test_fail_fast_stops_without_completion_marker(tmp_path) -> None:
    src = make_input(tmp_path)
    out = tmp_path / "out"
    with pytest.raises(AudioprepError, match="fail-fast") as info:
        run_stage(toy(fail_ids=("item1",)), out, in_dir=src, jobs=1, fail_fast=True, progress=False)
    assert info.value.exit_code == 1
    assert not (out / "stage.json").exists() and not (out / "manifest.jsonl").exists()
    assert [e["id"] for e in read_jsonl(out / "errors.jsonl")] == ["item1"]
    # resuming without the failure completes, reusing item0
    summary = run_stage(toy(fail_ids=("item1",)), out, in_dir=src, jobs=1, progress=False)
    assert summary.items_resumed == 1 and summary.items_failed == 1


@pytest.mark.slow
def test_process_pool_sets_up_once_per_worker_and_survives_a_dead_worker(tmp_path) -> None:
    src = make_input(tmp_path, n=12)
    out = tmp_path / "out"
    summary = run_stage(
        toy(sleep=0.05, crash_ids=("item5",)), out, in_dir=src, jobs=2, progress=False
    )
    records = read_jsonl(out / "manifest.jsonl")
    errors = read_jsonl(out / "errors.jsonl")
    assert "item5" in {e["id"] for e in errors}
    assert all(e["type"] == "WorkerDied" for e in errors)
    assert len(records) + len(errors) == 12 and summary.items_failed == len(errors)
    assert all(r["setup_pid"] != os.getpid() for r in records)
    # one setup per worker process: at most 2 pids before the crash and 2 after
    assert 2 <= len({r["setup_pid"] for r in records}) <= 4
    # re-running retries only the failed items, and the crash again fails only its own batch
    again = run_stage(
        toy(sleep=0.05, crash_ids=("item5",)), out, in_dir=src, jobs=2, progress=False
    )
    assert again.items_resumed == len(records)


@pytest.mark.slow
def test_corpus_stage_measures_in_workers_decides_once_and_resumes(tmp_path) -> None:
    from audioprep.run.runner import DECISION_FILE, MEASURE_JOURNAL
    from audioprep.testing import ToyCorpusStage

    src = make_input(tmp_path, n=7)
    clean, cut = tmp_path / "clean", tmp_path / "cut"
    stage = ToyCorpusStage()
    run_stage(stage, clean, in_dir=src, jobs=2, progress=False)
    kept = [r["id"] for r in read_jsonl(clean / "manifest.jsonl")]
    assert kept == ["item3", "item4", "item5", "item6"]
    assert [r["id"] for r in read_jsonl(clean / "rejected.jsonl")] == ["item0", "item1", "item2"]
    assert json.loads((clean / DECISION_FILE).read_text()) == {"median": 0.04}
    # a run killed while measuring (torn measure journal, no outputs) resumes to the same result
    run_stage(stage, cut, in_dir=src, jobs=1, progress=False)
    lines = (cut / MEASURE_JOURNAL).read_bytes().splitlines(keepends=True)
    (cut / MEASURE_JOURNAL).write_bytes(b"".join(lines[:5]) + lines[5][:9])  # header + 4
    for name in ("manifest.jsonl", "stage.json", JOURNAL):
        (cut / name).unlink()
    summary = run_stage(stage, cut, in_dir=src, jobs=1, progress=False)
    assert summary.items_ok == 4 and summary.items_rejected == 3
    assert len((cut / MEASURE_JOURNAL).read_bytes().splitlines()) == 8  # 3 measured again
    assert (cut / "manifest.jsonl").read_text() == (clean / "manifest.jsonl").read_text()
