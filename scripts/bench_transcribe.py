"""Speed of `audioprep transcribe`: x real time for Vosk (Korean model) per --jobs, and the
whisper engine batched against sequential on a tiny random model (overhead only: a random
model's decoding says nothing about a real model's speed; capped at 16 tokens a window).

    python scripts/bench_transcribe.py [--items 12] [--jobs 1,2] [--whisper]

Input: the first ITEMS LibriSpeech utterances in ../shared (16 kHz flac, 3-15 s each).
Prints one line per run and a Markdown table for docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--items", type=int, default=12)
    ap.add_argument("--jobs", default="1,2")
    ap.add_argument("--whisper", action="store_true", help="also the tiny random whisper")
    args = ap.parse_args()

    from audioprep.run.runner import run_stage
    from audioprep.stages.transcribe import TranscribeStage
    from audioprep.testing import LIBRI, make_manifest_dir, require_shared

    require_shared()
    flacs = sorted(LIBRI.glob("*/*.flac"))[: args.items]
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        src = make_manifest_dir(tmp / "in", flacs)
        for jobs in [int(j) for j in args.jobs.split(",")]:
            stage = TranscribeStage(
                TranscribeStage.Params(engine="vosk", model="ko", language="en", annotate_only=True)
            )
            t = time.perf_counter()
            s = run_stage(stage, tmp / f"vosk-{jobs}", in_dir=src, jobs=jobs, progress=False)
            wall = time.perf_counter() - t
            rows.append(("vosk ko", f"--jobs {jobs}", s.seconds_in, wall))
        if args.whisper:
            from test_transcribe import build_tiny_whisper

            from audioprep.engines.asr.base import load_audio
            from audioprep.engines.asr.whisper import WhisperEngine

            model = build_tiny_whisper(tmp / "tiny")
            audios = [load_audio(f) for f in flacs]
            seconds = sum(len(a) for a in audios) / 16000
            for batch in (1, 8):
                engine = WhisperEngine(model, batch_size=batch, beam_size=1, max_new_tokens=16)
                t = time.perf_counter()
                engine.transcribe_many(audios)
                wall = time.perf_counter() - t
                rows.append(("tiny random whisper", f"--decode-batch {batch}", seconds, wall))
    print(
        f"# {dt.date.today()}, {platform.machine()}, {os.cpu_count()} cores (shared), "
        f"{len(flacs)} clips"
    )
    print("| engine | run | audio s | wall s | x real time |")
    print("| --- | --- | --- | --- | --- |")
    for engine, run, seconds, wall in rows:
        print(f"| {engine} | {run} | {seconds:.1f} | {wall:.1f} | {seconds / wall:.2f} |")


if __name__ == "__main__":
    main()
