"""Memory that does not grow with the item's length (issue 28, items 7 and 8).

Each case runs in a subprocess on a synthetic 1-hour and 3-hour item (a melody written in
one-minute blocks) and reads the peak RSS of the largest process it ran (the stage's worker
included); the 3-hour run may use at most a constant more than the 1-hour one.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

SR = 16000
#: What a 3-hour item may take over a 1-hour one (MB): buffers, not the signal (which is
#: 230 MB more at 16 kHz float32, 115 MB at 8 kHz).
SLACK_MB = 60
#: repeats keeps what it measures, per-frame band features (24 float16 at 62.5 frames/s),
#: twice while saving: that much more for the 2 extra hours.
FEATURES_MB = 2 * (2 * 3600 * 62.5 * 24 * 2) / 2**20
#: dedupe's decision indexes every landmark of the corpus (about 200 a second, uint32 key,
#: int32 item and time, and the int64 sort order): that much more for the 2 extra hours.
INDEX_MB = 2 * 3600 * 200 * (4 + 4 + 4 + 8) / 2**20


def _long_wav(path: Path, seconds: int) -> Path:
    rng = np.random.default_rng(0)
    block = 60 * SR
    with sf.SoundFile(str(path), "w", SR, 1, subtype="PCM_16") as fh:
        for _ in range(seconds // 60):
            notes = np.repeat(rng.uniform(200, 3000, size=300), block // 300)
            y = 0.2 * np.sin(2 * np.pi * np.cumsum(notes) / SR)
            fh.write((y + 0.01 * rng.standard_normal(block)).astype(np.float32))
    return path


@pytest.fixture(scope="module")
def items(tmp_path_factory) -> dict[str, Path]:
    """Two manifest directories, one item each: ``1h`` and ``3h``."""
    root = tmp_path_factory.mktemp("long")
    out = {}
    for name, seconds in (("1h", 3600), ("3h", 3 * 3600)):
        d = root / name
        (d / "audio").mkdir(parents=True)
        _long_wav(d / "audio" / "long.wav", seconds)
        rec = {
            "id": "long",
            "audio": "audio/long.wav",
            "duration": float(seconds),
            "sample_rate": SR,
            "channels": 1,
            "source": {"title": "a long one"},
        }
        (d / "manifest.jsonl").write_text(json.dumps(rec) + "\n")
        out[name] = d
    return out


def _peak_mb(args: list[str]) -> int:
    """Peak RSS (MB) of the largest process ``audioprep ARGS`` ran, measured from outside."""
    code = (
        "import resource, subprocess, sys\n"
        "p = subprocess.run([sys.executable, '-m', 'audioprep', *sys.argv[1:]],"
        " capture_output=True, text=True)\n"
        "assert p.returncode in (0, 1), p.stderr\n"
        "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss // 1024)\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code, *map(str, args)], capture_output=True, text=True
    )
    assert proc.returncode == 0, proc.stderr
    return int(proc.stdout.split()[-1])


CASES = {
    "dedupe": lambda src, out: ["dedupe", src, out, "-j", "1", "-q"],
    "repeats": lambda src, out: ["repeats", src, out, "--group-by", "all", "-j", "1", "-q"],
    "spectrogram-captions": lambda src, out: [
        "export",
        src,
        out,
        "--format",
        "spectrogram-captions",
    ],
    "webdataset": lambda src, out: ["export", src, out, "--format", "webdataset"],
}


@pytest.mark.slow
@pytest.mark.parametrize("case", sorted(CASES))
def test_memory_does_not_grow_with_length(items, tmp_path: Path, case: str) -> None:
    peaks = {
        name: _peak_mb(CASES[case](src, tmp_path / f"out-{name}")) for name, src in items.items()
    }
    print(case, peaks)
    slack = SLACK_MB + {"repeats": FEATURES_MB, "dedupe": INDEX_MB}.get(case, 0)
    assert peaks["3h"] <= peaks["1h"] + slack, peaks
