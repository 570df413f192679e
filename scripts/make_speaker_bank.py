"""Regenerate the impostor bank shipped with speaker-filter (``engines/speaker/data/``).

The bank is Resemblyzer embeddings of other voices: the even-numbered half (sorted by speaker
number) of the 177 LibriSpeech train-clean-100 voices in ../shared (one 10-15 s utterance each),
three rows per voice (the whole utterance and its two halves), stored as float16. The odd half is
left for ``scripts/eval_speakers.py``'s guests, so the benchmark never meets a voice of the bank.

    python scripts/make_speaker_bank.py
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))
sys.path.insert(0, str(REPO / "scripts"))

from audioprep.engines.speaker.resemblyzer import (  # noqa: E402
    BANK_FILE,
    BANK_SPEAKERS,
    decode,
    embed_batch,
    load_encoder,
    voiced,
)
from eval_speakers import pool_voices  # noqa: E402


def main() -> int:
    voices = {s: v for s, v in pool_voices().items() if v["half"] == "bank"}
    encoder = load_encoder(int(os.environ.get("AUDIOPREP_THREADS", "1")))
    rows, who = [], []
    for spk, v in voices.items():
        wav, _ = voiced(decode(v["file"]))
        half = len(wav) // 2
        for emb, _ in embed_batch(encoder, [wav, wav[:half], wav[half:]]):
            rows.append(emb)
            who.append(spk)
    bank = np.array(rows, dtype=np.float16)
    np.save(BANK_FILE, bank)
    BANK_SPEAKERS.write_text(
        json.dumps(
            {
                "source": "LibriSpeech train-clean-100 (CC BY 4.0), one utterance per speaker",
                "rows": "the utterance, its first half, its second half (voiced audio)",
                "speakers": who,
                "genders": {s: voices[s]["gender"] for s in voices},
            },
            indent=1,
        )
        + "\n"
    )
    print(f"{BANK_FILE}: {bank.shape} from {len(voices)} voices")
    return 0


if __name__ == "__main__":
    sys.exit(main())
