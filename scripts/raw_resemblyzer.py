"""Resemblyzer's own loop on a list of clips, for the benchmarks to compare speaker-filter with:
``preprocess_wav`` + ``embed_utterance`` for each reference and each clip, cosine similarity to
the mean reference embedding (what Resemblyzer's demos do).

Usage: python scripts/raw_resemblyzer.py FILES.txt REFERENCE_DIR
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
from resemblyzer import VoiceEncoder, preprocess_wav


def main() -> None:
    files = [Path(x) for x in Path(sys.argv[1]).read_text().splitlines() if x.strip()]
    refs = sorted(p for p in Path(sys.argv[2]).iterdir() if p.suffix in (".flac", ".wav"))
    encoder = VoiceEncoder("cpu", verbose=False)
    ref = np.mean([encoder.embed_utterance(preprocess_wav(p)) for p in refs], axis=0)
    ref /= np.linalg.norm(ref)
    kept = 0
    for f in files:
        wav = preprocess_wav(f)
        if len(wav) == 0:
            continue
        kept += float(encoder.embed_utterance(wav) @ ref) >= 0.75
    print(f"{kept} of {len(files)} clips at or above 0.75")


if __name__ == "__main__":
    main()
