"""Adding an engine = its file + its test: a toy segmenter, outside the package, that the
segment stage picks with --engine, and that doctor and models list, with no other file
changed. As :class:`audioprep.testing.ToyStage` proves it for stages."""

from __future__ import annotations

import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

from audioprep.engines import base
from audioprep.testing import make_manifest_dir, read_jsonl, sine_file

#: The whole engine: one file.
TOY = '''
"""A toy segmenter: "loud" or "quiet" per half second, from the RMS level."""

import os
from pathlib import Path

from audioprep.engines.base import Settings, Weights
from audioprep.engines.segment.base import SegmenterEngine


class ToyEngine(SegmenterEngine):
    name = "toy"
    family = "segment"
    devices = ("cpu",)
    runtime = "numpy"
    summary = "loud/quiet per half second (a test's toy)"

    @classmethod
    def from_settings(cls, settings: Settings) -> "ToyEngine":
        return cls()

    def segment(self, path: Path, *, window_s: float = 300.0):
        import numpy as np
        import soundfile as sf

        x, sr = sf.read(str(path), dtype="float32", always_2d=True)
        step = sr // 2
        out = []
        for i in range(0, len(x), step):
            rms = float(np.sqrt(np.mean(x[i : i + step] ** 2)))
            label = "loud" if rms > 0.05 else "quiet"
            out.append((label, round(i / sr, 3), round(min(len(x), i + step) / sr, 3)))
        return out

    def close(self) -> None:
        log = os.environ.get("TOY_ENGINE_CLOSED")
        if log:
            with open(log, "a") as fh:
                fh.write(f"{os.getpid()}\\n")

    @classmethod
    def versions(cls) -> dict:
        return {"toy": "1"}

    @classmethod
    def weights(cls):
        return (Weights("toy", ("toy.bin",), "a test", used_by="segment --engine toy"),)
'''


@pytest.fixture
def toy_dir(tmp_path: Path) -> Iterator[Path]:
    """A folder on sys.path holding the toy engine's file (and, for the entry-point test, a
    distribution that declares it); removed from the path and the registry afterwards."""
    folder = tmp_path / "plugins"
    folder.mkdir()
    (folder / "toy_audioprep_engine.py").write_text(textwrap.dedent(TOY))
    sys.path.insert(0, str(folder))
    try:
        yield folder
    finally:
        sys.path.remove(str(folder))
        sys.modules.pop("toy_audioprep_engine", None)
        base.unregister("segment", "toy")
        base.rescan()


def _corpus(tmp_path: Path) -> Path:
    loud = sine_file(tmp_path / "src" / "loud.wav", seconds=1.0)
    quiet = sine_file(tmp_path / "src" / "quiet.wav", seconds=1.0)
    import soundfile as sf

    x, sr = sf.read(str(quiet))
    sf.write(str(quiet), x * 0.01, sr)
    return make_manifest_dir(tmp_path / "in", [loud, quiet])


def _cli(*args: object) -> tuple[int, str]:
    """The CLI in this process (the toy engine is registered here only)."""
    from typer.testing import CliRunner

    from audioprep.cli.app import app

    result = CliRunner().invoke(app, [str(a) for a in args])
    return result.exit_code, result.output


def test_a_registered_engine_is_picked_run_and_listed(toy_dir: Path, tmp_path: Path) -> None:
    import toy_audioprep_engine

    from audioprep.cli.doctor import collect

    assert "toy" not in base.names("segment")
    code, out = _cli("segment", _corpus(tmp_path), tmp_path / "x", "--engine", "toy", "-j", "1")
    assert code == 2 and "toy" in out and "ina" in out  # not a choice yet: one sentence

    base.register(toy_audioprep_engine.ToyEngine)
    assert "toy" in base.names("segment")
    code, out = _cli(
        "segment", tmp_path / "in", tmp_path / "out", "--engine", "toy", "-j", "1", "-q"
    )
    assert code == 0, out
    records = {r["id"]: r for r in read_jsonl(tmp_path / "out" / "manifest.jsonl")}
    assert [s["label"] for s in records["loud"]["segments"]] == ["loud", "loud"]
    assert [s["label"] for s in records["quiet"]["segments"]] == ["quiet", "quiet"]
    stage_json = (tmp_path / "out" / "stage.json").read_text()
    assert '"toy": "1"' in stage_json  # the engine's versions()
    assert "vad_engine" not in stage_json  # options the toy does not read are not recorded

    rows = collect(engines=[base.info("segment", "toy")])
    assert [(r.stage, r.engine, r.device, r.ok) for r in rows][0] == ("segment", "toy", "cpu", True)
    code, out = _cli("models", "--model-dir", tmp_path)
    assert code == 0 and "missing  toy/toy.bin" in out and "used by: segment --engine toy" in out


def test_an_engine_from_an_entry_point_is_found_and_torn_down(
    toy_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A package declaring ``segment/toy = module:Class`` in the ``audioprep.engines`` group
    is an engine; every worker (here a pool of two processes) ends with the stage's teardown,
    which closes the engine."""
    from audioprep.run.runner import run_stage
    from audioprep.stages.segment import SegmentStage

    dist = toy_dir / "toy_audioprep_engine-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: toy-audioprep-engine\n")
    (dist / "entry_points.txt").write_text(
        "[audioprep.engines]\nsegment/toy = toy_audioprep_engine:ToyEngine\n"
    )
    base.rescan()
    assert base.info("segment", "toy").module == "toy_audioprep_engine"
    closed = tmp_path / "closed.txt"
    monkeypatch.setenv("TOY_ENGINE_CLOSED", str(closed))
    src = _corpus(tmp_path)
    for jobs in (1, 2):
        closed.unlink(missing_ok=True)
        stage = SegmentStage(SegmentStage.Params(engine="toy"))
        result = run_stage(stage, tmp_path / f"out{jobs}", in_dir=src, jobs=jobs, progress=False)
        assert result.items_ok == 2
        pids = closed.read_text().split()
        assert len(pids) == len(set(pids)) >= 1, pids  # each worker closed its engine once
