"""`--shard-size` is an export option, checked where it is given (it was AUDIOPREP_SHARD_SIZE)."""

from __future__ import annotations

import tarfile
from pathlib import Path

import pytest
from typer.testing import CliRunner

from audioprep.cli.app import app
from audioprep.errors import UsageError
from audioprep.exports import export
from audioprep.testing import make_manifest_dir, sine_file


@pytest.fixture(scope="module")
def src(tmp_path_factory: pytest.TempPathFactory) -> Path:
    tmp = tmp_path_factory.mktemp("shards")
    files = [sine_file(tmp / f"{n}.wav", seconds=0.1) for n in "abcde"]
    return make_manifest_dir(tmp / "in", files)


@pytest.mark.parametrize("value", ["abc", "0", "-5", "1.5"])
def test_a_bad_shard_size_is_one_sentence_and_exit_2(src: Path, tmp_path: Path, value) -> None:
    out = tmp_path / "wds"
    result = CliRunner().invoke(
        app, ["export", str(src), str(out), "--format", "webdataset", "--shard-size", value]
    )
    assert result.exit_code == 2, result.output
    assert "--shard-size" in result.output and "Traceback" not in result.output
    assert not out.exists()


def test_shard_size_splits_the_items_and_is_only_for_sharded_formats(
    src: Path, tmp_path: Path
) -> None:
    export(src, tmp_path / "wds", fmt="webdataset", shard_size=2)
    shards = sorted((tmp_path / "wds").glob("shard-*.tar"))
    counts = []
    for shard in shards:
        with tarfile.open(shard) as tar:
            counts.append(len(tar.getnames()) // 2)
    assert counts == [2, 2, 1]
    with pytest.raises(UsageError, match="--shard-size is for a format that writes shards"):
        export(src, tmp_path / "hf", fmt="hf", shard_size=2)


def test_audioprep_threads_has_one_meaning_and_is_checked(monkeypatch) -> None:
    from audioprep.run.runner import worker_threads
    from audioprep.stages.speaker_filter import SpeakerFilterStage
    from audioprep.stages.trim import TrimStage

    trim, speaker = TrimStage(), SpeakerFilterStage(SpeakerFilterStage.Params())
    assert worker_threads(speaker, jobs=1) == 1  # the stage's declared default
    assert worker_threads(trim, jobs=1) >= 1  # cores / jobs
    monkeypatch.setenv("AUDIOPREP_THREADS", "3")
    assert worker_threads(speaker, jobs=1) == worker_threads(trim, jobs=4) == 3
    monkeypatch.setenv("AUDIOPREP_THREADS", "lots")
    with pytest.raises(UsageError, match="AUDIOPREP_THREADS"):
        worker_threads(trim, jobs=1)
