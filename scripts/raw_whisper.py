"""faster-whisper alone on a list of clips, for the benchmarks to compare transcribe with: one
``WhisperModel`` (CPU, int8), ``transcribe`` per clip, segments joined.

Usage: python scripts/raw_whisper.py FILES.txt MODEL_FOLDER
"""

from __future__ import annotations

import sys
from pathlib import Path

from faster_whisper import WhisperModel


def main() -> None:
    files = [x for x in Path(sys.argv[1]).read_text().splitlines() if x.strip()]
    model = WhisperModel(sys.argv[2], device="cpu", compute_type="int8")
    words = 0
    for f in files:
        segments, _ = model.transcribe(f, beam_size=5)
        words += len(" ".join(s.text for s in segments).split())
    print(f"{words} words in {len(files)} clips")


if __name__ == "__main__":
    main()
