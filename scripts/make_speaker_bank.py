"""Regenerate the impostor banks shipped with speaker-filter (``engines/speaker/data/``).

A bank is one speaker engine's embeddings of other voices (``impostors.npy`` Resemblyzer's,
``impostors-campplus.npy`` CAM++'s; the engine's ``bank_file``): the even-numbered half (sorted
by speaker number) of the 177 LibriSpeech train-clean-100 voices in ../shared (one 10-15 s
utterance each), three rows per voice (the whole utterance and its two halves), stored as
float16. The odd half is
left for ``scripts/eval_speakers.py``'s guests, so the benchmark never meets a voice of the bank.

    python scripts/make_speaker_bank.py [--engine resemblyzer|campplus]   (default: every one)
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

from audioprep.engines import base as engines  # noqa: E402
from audioprep.engines.models import model_dir  # noqa: E402
from audioprep.engines.speaker.base import DATA  # noqa: E402
from audioprep.engines.speaker.voiced import decode, voiced  # noqa: E402
from eval_speakers import pool_voices  # noqa: E402

BANK_SPEAKERS = DATA / "impostors.json"


def make(name: str) -> None:
    voices = {s: v for s, v in pool_voices().items() if v["half"] == "bank"}
    threads = int(os.environ.get("AUDIOPREP_THREADS", "1"))
    settings = engines.Settings(threads=threads, model_dir=model_dir(None))
    engine = engines.load("speaker", name, settings)
    rows, who = [], []
    for spk, v in voices.items():
        wav, _ = voiced(decode(v["file"]))
        half = len(wav) // 2
        for emb, _ in engine.embed_many([wav, wav[:half], wav[half:]]):
            rows.append(emb)
            who.append(spk)
    bank = np.array(rows, dtype=np.float16)
    np.save(engine.bank_file, bank)
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
    print(f"{engine.bank_file}: {bank.shape} from {len(voices)} voices")


def main() -> int:
    import argparse

    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--engine", choices=engines.names("speaker"), action="append")
    for name in ap.parse_args().engine or engines.names("speaker"):
        make(name)
    return 0


if __name__ == "__main__":
    sys.exit(main())
