"""Episodes with known jingles, ads and outros, built from the real audio in ../shared."""

from __future__ import annotations

import subprocess
from pathlib import Path

import numpy as np
import soundfile as sf

SR = 16000


def _decode(path: Path, tmp: Path) -> np.ndarray:
    out = tmp / f"{path.stem}.16k.wav"
    subprocess.run(
        [
            "ffmpeg",
            "-nostdin",
            "-v",
            "error",
            "-y",
            "-i",
            str(path),
            "-ac",
            "1",
            "-ar",
            str(SR),
            str(out),
        ],
        check=True,
    )
    x, _ = sf.read(str(out), dtype="float32")
    return x


def _mp3_roundtrip(x: np.ndarray, tmp: Path, name: str, bitrate: str) -> np.ndarray:
    wav, mp3, back = tmp / f"{name}.wav", tmp / f"{name}.mp3", tmp / f"{name}.back.wav"
    sf.write(str(wav), x, SR)
    subprocess.run(
        ["ffmpeg", "-nostdin", "-v", "error", "-y", "-i", str(wav), "-b:a", bitrate, str(mp3)],
        check=True,
    )
    subprocess.run(
        ["ffmpeg", "-nostdin", "-v", "error", "-y", "-i", str(mp3), "-ar", str(SR), str(back)],
        check=True,
    )
    y, _ = sf.read(str(back), dtype="float32")
    y = y[: len(x)]
    return np.pad(y, (0, len(x) - len(y)))


def build_episodes(data: Path, out: Path, tmp: Path) -> dict[str, list[tuple[float, float, str]]]:
    """Write six episodes (16 kHz FLAC) into ``out``; return each one's true repeats
    ``[(start_s, end_s, label), ...]``."""
    libri = data / "librispeech-test-other"
    song = _decode(data / "music" / "audio_example.mp3", tmp)
    musan, _ = sf.read(str(data / "musan-mix" / "musanmix.wav"), dtype="float32")
    jingle = song[1 * SR : 7 * SR]  # 6 s of a song with vocals
    outro = musan[5 * SR : 10 * SR]  # 5 s of a music piece
    ad_src, _ = sf.read(str(libri / "2609" / "2609-156975-0007.flac"), dtype="float32")
    ad = ad_src[2 * SR : 10 * SR]  # an 8 s read by one speaker
    utts = []
    for speaker in ("1688", "1998", "2033", "2414", "3005"):
        for f in sorted((libri / speaker).glob("*.flac"))[:3]:
            utts.append(sf.read(str(f), dtype="float32")[0])
    u = iter(utts)
    cold_open = next(u)[: 3 * SR]
    jingle_mp3 = _mp3_roundtrip(0.8 * jingle, tmp, "jingle", "64k")
    plans = {
        "ep1": [
            ("jingle", 1.0 * jingle),
            (None, next(u)),
            ("ad", ad),
            (None, next(u)),
            ("outro", outro),
        ],
        "ep2": [
            ("jingle", 0.5 * jingle),
            (None, next(u)),
            ("ad", 0.7 * ad),
            (None, next(u)),
            ("outro", 1.2 * outro),
        ],
        "ep3": [("jingle", jingle_mp3), (None, next(u)), ("ad", ad), (None, next(u))],
        "ep4": [(None, cold_open), ("jingle", 0.35 * jingle), (None, next(u)), (None, next(u))],
        "ep5": [(None, next(u)), (None, next(u))],
        "ep6": [(None, next(u)), (None, next(u))],
    }
    truth: dict[str, list[tuple[float, float, str]]] = {}
    out.mkdir(parents=True, exist_ok=True)
    for name, parts in plans.items():
        pos, spans = 0, []
        for label, x in parts:
            if label:
                spans.append((pos / SR, (pos + len(x)) / SR, label))
            pos += len(x)
        sf.write(str(out / f"{name}.flac"), np.concatenate([p for _, p in parts]), SR)
        truth[name] = spans
    return truth
