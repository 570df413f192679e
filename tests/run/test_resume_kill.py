"""A run killed with SIGKILL mid-way, then re-run, equals an uninterrupted run."""

from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from audioprep.testing import LIBRI, cli, read_jsonl, require_shared

pytestmark = pytest.mark.slow  # real audio through the CLI, or models


N_FILES = 120


@pytest.fixture(scope="module")
def raw_corpus(tmp_path_factory) -> Path:
    """120 short real-speech files (LibriSpeech pieces), ingested."""
    require_shared()
    root = tmp_path_factory.mktemp("kill")
    src = root / "src"
    src.mkdir()
    speech = np.concatenate([sf.read(str(f))[0] for f in sorted((LIBRI / "2414").glob("*.flac"))])
    for i in range(N_FILES):
        start = (i * 7919) % (len(speech) - 48000)
        sf.write(src / f"piece {i:03d}.flac", speech[start : start + 16000 + 200 * i], 16000)
    cli("ingest", src, root / "raw", "-q")
    return root / "raw"


def digest_dir(d: Path) -> dict[str, str]:
    return {
        p.name: hashlib.md5(p.read_bytes()).hexdigest() for p in sorted((d / "audio").iterdir())
    }


def _kill_after(cmd: list[str], journal: Path, n_lines: int) -> None:
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if journal.exists() and journal.read_bytes().count(b"\n") >= n_lines:
            break
        if proc.poll() is not None:
            pytest.fail("the run finished before it could be killed")
        time.sleep(0.005)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()


@pytest.mark.parametrize("kill_at", [1, 45])
def test_sigkill_then_resume_equals_uninterrupted(raw_corpus, tmp_path, kill_at) -> None:
    args = [
        "convert",
        str(raw_corpus),
        "--sample-rate",
        "8000",
        "--format",
        "flac",
        "-j",
        "2",
        "-q",
    ]
    clean = tmp_path / "clean"
    cli(*args[:2], clean, *args[2:])

    killed = tmp_path / "killed"
    cmd = [sys.executable, "-m", "audioprep", *args[:2], str(killed), *args[2:]]
    _kill_after(cmd, killed / ".journal.jsonl", kill_at + 1)  # + the header line
    assert not (killed / "stage.json").exists()
    # no partial audio: every file in audio/ is complete and decodable
    for path in (killed / "audio").iterdir():
        assert sf.info(str(path)).frames > 0
    done = len((killed / ".journal.jsonl").read_bytes().splitlines())
    assert done < N_FILES

    proc = cli(*args[:2], killed, *args[2:])  # the lock was released with the dead run
    assert "already done" in proc.stderr
    assert (killed / "manifest.jsonl").read_text() == (clean / "manifest.jsonl").read_text()
    ids = [r["id"] for r in read_jsonl(killed / "manifest.jsonl")]
    assert len(ids) == len(set(ids)) == N_FILES
    assert digest_dir(killed) == digest_dir(clean)
    assert (killed / "errors.jsonl").read_text() == ""
    assert not (killed / ".tmp").exists()
