"""Shared fixtures; the helpers themselves live in :mod:`audioprep.testing`."""

from __future__ import annotations

import os
import re
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


#: Skip reasons that mean "set-up did not install something it installs" (a tool, a package,
#: the shared audio). Under CI (`CI=true`) such a skip fails the run: a green CI must not hide
#: a missing install step. Skips for the machine's nature (no tmpfs, one file system) stay skips.
SETUP_SKIP = re.compile(
    r"not installed|could not import|No module named|make (test|setup|espeak|chromium)|"
    r"apt-get|real test audio not found",
    re.I,
)


def _in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no")


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]):  # type: ignore[no-untyped-def]
    outcome = yield
    report = outcome.get_result()
    if not (report.skipped and _in_ci()) or not isinstance(report.longrepr, tuple):
        return
    reason = str(report.longrepr[2])
    if SETUP_SKIP.search(reason):
        report.outcome = "failed"
        report.longrepr = f"CI=true: skipped for something set-up installs: {reason}"


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
