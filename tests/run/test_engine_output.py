"""Engines' native start-up lines (TensorFlow, absl) stay out of the terminal unless --verbose."""

from __future__ import annotations

import dataclasses
import os
import subprocess
import sys
from pathlib import Path

import pytest

from audioprep.core.stage import ItemContext, MapStage, WorkerContext
from audioprep.manifests.records import Record
from audioprep.run.executors.base import VERBOSE_ENV, Worker, WorkerSpec
from audioprep.testing import LIBRI, make_manifest_dir, require_shared, sine_file


class NoisyStage(MapStage):
    """Writes to file descriptor 2 the way a native library does (not through sys.stderr)."""

    name = "noisy"

    @dataclasses.dataclass(frozen=True)
    class Params:
        pass

    def setup(self, ctx: WorkerContext) -> None:
        os.write(2, b"I0000 port.cc:153] oneDNN custom operations are on\n")

    def process(self, record: Record, ctx: ItemContext) -> list[Record]:
        os.write(2, b"WARNING: All log messages before absl::InitializeLog()\n")
        return [dict(record)]


def _run_worker(tmp_path: Path) -> None:
    src = make_manifest_dir(tmp_path / "in", [sine_file(tmp_path / "a.wav")])
    spec = WorkerSpec.for_stage(NoisyStage(), in_dir=src, out_dir=tmp_path / "out")
    worker = Worker(spec)
    record = {"id": "a", "audio": "audio/a.wav", "duration": 1.0}
    assert worker.process(record).status == "ok"
    print("the runner's own line", file=sys.stderr)


def test_native_engine_lines_are_hidden(tmp_path: Path, capfd: pytest.CaptureFixture[str]) -> None:
    os.environ.pop(VERBOSE_ENV, None)
    _run_worker(tmp_path)
    err = capfd.readouterr().err
    assert "oneDNN" not in err and "absl" not in err
    assert "the runner's own line" in err  # descriptor 2 is back afterwards


def test_verbose_shows_them(
    tmp_path: Path, capfd: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(VERBOSE_ENV, "1")
    _run_worker(tmp_path)
    err = capfd.readouterr().err
    assert "oneDNN" in err and "absl" in err


@pytest.mark.slow
def test_ina_segment_prints_no_tensorflow_lines(tmp_path: Path) -> None:
    """The demo's segment step (TensorFlow in two workers), as the CLI runs it."""
    require_shared()
    pytest.importorskip("inaSpeechSegmenter")
    flac = sorted((LIBRI / "1688").glob("*.flac"))[:2]
    src = make_manifest_dir(tmp_path / "in", flac)
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).parents[2] / "src")}
    env.pop(VERBOSE_ENV, None)
    args = [sys.executable, "-m", "audioprep", "segment", str(src), str(tmp_path / "out")]
    proc = subprocess.run(
        [*args, "--engine", "ina", "--jobs", "2", "--quiet"],
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr
    assert "absl" not in proc.stderr and "oneDNN" not in proc.stderr, proc.stderr
    assert "segment: 2 ok" in proc.stderr  # the stage's summary still shows
