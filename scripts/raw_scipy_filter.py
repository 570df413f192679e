"""The raw tool for the denoise bench: read each wav whole, scipy sosfilt, write it back."""

from __future__ import annotations

import sys
from pathlib import Path

import soundfile as sf
from scipy import signal


def main() -> None:
    src, dst = Path(sys.argv[1]), Path(sys.argv[2])
    dst.mkdir(parents=True, exist_ok=True)
    sos = None
    for path in sorted(src.glob("*.wav")):
        y, sr = sf.read(str(path))
        if sos is None:
            sos = signal.butter(6, 5000, btype="lowpass", fs=sr, output="sos")
        sf.write(str(dst / path.name), signal.sosfilt(sos, y, axis=0), sr, subtype="PCM_16")


if __name__ == "__main__":
    main()
