"""Shared fixtures; the helpers themselves live in :mod:`audioprep.testing`."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
from hypothesis import settings

from audioprep.testing import LIBRI, MUSANMIX, SHARED, SONG, ffmpeg, require_shared

# a loaded machine (CI, shared runners) must not turn slow examples into failures
settings.register_profile("audioprep", deadline=None)
settings.load_profile("audioprep")

# stages run in subprocesses find the models here unless the environment says otherwise
os.environ.setdefault("AUDIOPREP_MODEL_DIR", str(SHARED / "models"))


@pytest.fixture
def shared() -> Path:
    require_shared()
    return SHARED


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
