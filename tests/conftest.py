"""Shared fixtures: the real audio in ../shared, small corpora made from it, a CLI runner."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("AUDIOPREP_SHARED", REPO.parent / "shared"))
DATA = SHARED / "data"
LIBRI = DATA / "librispeech-test-other"
MUSANMIX = DATA / "musan-mix" / "musanmix.wav"
SONG = DATA / "music" / "audio_example.mp3"


def require_shared() -> None:
    if not DATA.is_dir():
        pytest.skip(f"real test audio not found at {SHARED} (set AUDIOPREP_SHARED)")


@pytest.fixture
def shared() -> Path:
    require_shared()
    return SHARED


def ffmpeg(*args: str) -> None:
    subprocess.run(["ffmpeg", "-nostdin", "-v", "error", "-y", *args], check=True)


def cli(*args: str, check: bool | None = True, **kw) -> subprocess.CompletedProcess[str]:
    """Run ``python -m audioprep ARGS`` and return the completed process."""
    proc = subprocess.run(
        [sys.executable, "-m", "audioprep", *map(str, args)],
        capture_output=True,
        text=True,
        **kw,
    )
    if check and proc.returncode != 0:
        raise AssertionError(f"audioprep {args} exited {proc.returncode}:\n{proc.stderr}")
    return proc


def read_jsonl(path: Path) -> list[dict]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line]


@pytest.fixture
def media_dir(tmp_path: Path) -> Path:
    """Real files of several formats, with awkward names: flac, mp3, wav, an mp4 and a webm."""
    require_shared()
    src = tmp_path / "media"
    odd = src / "dossier été $(echo x) 'q'"
    odd.mkdir(parents=True)
    flacs = sorted((LIBRI / "1688").glob("*.flac"))[:3]
    for f in flacs:
        shutil.copy(f, odd / f"spoken {f.name}")
    shutil.copy(SONG, src / "song; rm -rf.mp3")
    shutil.copy(MUSANMIX, src / "musanmix.wav")
    ffmpeg("-i", str(flacs[0]), "-c:a", "aac", "-b:a", "64k", str(src / "talk video.mp4"))
    ffmpeg("-i", str(flacs[1]), "-c:a", "libopus", str(src / "clip.webm"))
    return src


MODELS = Path(os.environ.setdefault("AUDIOPREP_MODEL_DIR", str(SHARED / "models")))


def frame_labels(segments, n_frames: int, *, hop: float = 0.01) -> list[str]:
    """Per-frame labels (frame i covers [i*hop, (i+1)*hop)) from (label, start, end) triples."""
    labels = ["none"] * n_frames
    for label, start, end in segments:
        a, b = int(round(start / hop)), min(n_frames, int(round(end / hop)))
        labels[a:b] = [label] * (b - a)
    return labels


def read_reference_csv(path: Path) -> list[tuple[str, float, float]]:
    rows = path.read_text().splitlines()[1:]
    out = []
    for row in rows:
        label, start, stop = row.split("\t")
        label = "speech" if label in ("male", "female") else label
        out.append((label, float(start), float(stop)))
    return out
