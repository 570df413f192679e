"""Fingerprinting an item on disk: decode to 8 kHz mono in blocks, analyse with
:mod:`audioprep.dsp.fingerprint`, keep the result in ``OUT/fingerprints/ID.npz``.

Used by the ``repeats`` and ``dedupe`` stages. Files libsndfile reads exactly (wav, flac,
aiff) are read in blocks and resampled with a polyphase filter; anything else is decoded by
ffmpeg to 16 kHz first. Memory: the 8 kHz signal (32 kB per second as float32) plus one block.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from audioprep.engines.fingerprint.base import Fingerprint, FingerprinterEngine
from audioprep.errors import ItemError, NonFiniteAudio

FINGERPRINT_DIR = "fingerprints"
BLOCK_SECONDS = 30
#: Read with libsndfile; other containers (mp3, m4a, ogg...) are decoded by ffmpeg, so that the
#: positions found are those ``repeats`` cuts at (it decodes them with ffmpeg too).
SNDFILE_FORMATS = ("WAV", "WAVEX", "RF64", "FLAC", "AIFF")


def _resample_blocks(blocks: Any, sr: int, stats: dict[str, float]) -> Any:
    """Mono float32 blocks at ``sr`` -> 8 kHz, block by block with context so the result does
    not depend on the block size. Also sums the power of the input and the output, whose
    difference is the energy above 4 kHz (``stats``)."""
    import numpy as np
    from scipy.signal import resample_poly

    from audioprep.dsp.fingerprint import SR

    g = math.gcd(SR, sr)
    up, down = SR // g, sr // g
    ctx_in = down * max(1, math.ceil(2048 / down))
    carry = np.zeros(0, np.float32)
    prev_tail = np.zeros(0, np.float32)
    for block in blocks:
        if not np.isfinite(block).all():
            raise NonFiniteAudio()
        stats["in_power"] += float(np.square(block, dtype=np.float64).sum())
        stats["in_n"] += len(block)
        carry = np.concatenate([carry, block])
        usable = (len(carry) - ctx_in) // down * down  # keep ctx_in samples of look-ahead
        if usable <= 0:
            continue
        seg = np.concatenate([prev_tail, carry[: usable + ctx_in]])
        y = resample_poly(seg, up, down).astype(np.float32)
        lead = len(prev_tail) * up // down
        out = y[lead : lead + usable * up // down]
        prev_tail = carry[max(0, usable - ctx_in) : usable]
        carry = carry[usable:]
        yield out
    if len(carry) or len(prev_tail):
        seg = np.concatenate([prev_tail, carry])
        y = resample_poly(seg, up, down).astype(np.float32)
        lead = len(prev_tail) * up // down
        yield y[lead : lead + math.ceil(len(carry) * up / down)]


def _source_blocks(path: Path) -> tuple[Any, int]:
    """Mono float32 blocks of ``path`` and their sample rate."""
    import soundfile as sf

    from audioprep.core.media import decode_chunks

    try:
        info = sf.info(str(path))
        if info.frames <= 0 or info.format not in SNDFILE_FORMATS:
            raise RuntimeError("decoded by ffmpeg")
    except (sf.LibsndfileError, RuntimeError, TypeError):
        rate = 16000

        def ff() -> Any:
            for chunk in decode_chunks(
                path,
                chunk_frames=rate * BLOCK_SECONDS,
                sample_rate=rate,
                channels=1,
                sample_format="f32",
            ):
                yield chunk[:, 0]

        return ff(), rate

    def sndfile() -> Any:
        with sf.SoundFile(str(path)) as fh:
            for block in fh.blocks(
                blocksize=info.samplerate * BLOCK_SECONDS, dtype="float32", always_2d=True
            ):
                yield block.mean(axis=1, dtype="float32")

    return sndfile(), info.samplerate


def decode_8k(path: Path) -> tuple[Any, dict[str, float]]:
    """The item as 8 kHz mono float32 (shape ``(n,)``) and level statistics:
    ``hf_db`` (energy above 4 kHz relative to all, dB; -100 when there is none),
    ``rms_db`` and ``peak`` (of the 8 kHz signal)."""
    import numpy as np

    blocks, sr = _source_blocks(path)
    stats = {"in_power": 0.0, "in_n": 0}
    try:
        parts = list(_resample_blocks(blocks, sr, stats))
    except RuntimeError as exc:  # libsndfile errors while reading
        raise ItemError(f"could not decode the audio: {exc}") from None
    x = np.concatenate(parts) if parts else np.zeros(0, np.float32)
    if len(x) == 0:
        raise ItemError("the audio holds no samples")
    in_mean = stats["in_power"] / max(1, stats["in_n"])
    out_mean = float(np.square(x, dtype=np.float64).mean())
    hf = max(0.0, 1.0 - out_mean / in_mean) if in_mean > 0 else 0.0
    return x, {
        "hf_db": round(max(-100.0, 10 * math.log10(hf)) if hf > 0 else -100.0, 2),
        "rms_db": round(10 * math.log10(out_mean + 1e-12), 2),
        "peak": round(float(np.abs(x).max()), 5),
    }


def fingerprint_file(path: Path, out_dir: Path, item_id: str, *, features: bool) -> dict[str, Any]:
    """Fingerprint ``path`` into ``out_dir/fingerprints/ITEM_ID.npz``; return the
    measurement: ``frames``, ``hashes`` (count), level statistics and ``file`` (relative).

    The audio is streamed (decoded, resampled to 8 kHz and analysed block by block): memory
    holds the landmarks and per-frame features, never the signal, whatever its length."""
    import os

    import numpy as np

    from audioprep.dsp.fingerprint import FRAME_SECONDS, analyse_stream

    blocks, sr = _source_blocks(path)
    stats = {"in_power": 0.0, "in_n": 0}
    level = {"power": 0.0, "n": 0, "peak": 0.0}

    def measured(parts: Any) -> Any:
        for part in parts:
            level["power"] += float(np.square(part, dtype=np.float64).sum())
            level["n"] += len(part)
            if len(part):
                level["peak"] = max(level["peak"], float(np.abs(part).max()))
            yield part

    try:
        fp = analyse_stream(measured(_resample_blocks(blocks, sr, stats)), features=features)
    except RuntimeError as exc:  # libsndfile errors while reading
        raise ItemError(f"could not decode the audio: {exc}") from None
    if level["n"] == 0:
        raise ItemError("the audio holds no samples")
    in_mean = stats["in_power"] / max(1, stats["in_n"])
    out_mean = level["power"] / level["n"]
    hf = max(0.0, 1.0 - out_mean / in_mean) if in_mean > 0 else 0.0
    levels = {
        "hf_db": round(max(-100.0, 10 * math.log10(hf)) if hf > 0 else -100.0, 2),
        "rms_db": round(10 * math.log10(out_mean + 1e-12), 2),
        "peak": round(level["peak"], 5),
    }
    folder = out_dir / FINGERPRINT_DIR
    folder.mkdir(parents=True, exist_ok=True)
    arrays = {"hashes": fp["hashes"], "times": fp["times"]}
    if features:
        arrays |= {"features": fp["features"], "energy": fp["energy"]}
    tmp = folder / f".{os.getpid()}-{item_id}.npz"
    np.savez(tmp, **arrays)
    os.replace(tmp, folder / f"{item_id}.npz")
    frames = len(fp["energy"])
    return {
        "file": f"{FINGERPRINT_DIR}/{item_id}.npz",
        "frames": frames,
        "seconds": round(frames * FRAME_SECONDS, 3),
        "hashes": len(fp["hashes"]),
        **levels,
    }


def load_fingerprint(out_dir: Path, measurement: dict[str, Any]) -> dict[str, Any]:
    """The arrays saved by :func:`fingerprint_file`."""
    import numpy as np

    from audioprep.errors import AudioprepError

    path = out_dir / measurement["file"]
    if not path.is_file():
        raise AudioprepError(
            f"{path} is missing (fingerprints/ was deleted?): run again with --overwrite."
        )
    with np.load(path, allow_pickle=False) as data:
        return {k: data[k] for k in data.files}


def tool_versions() -> dict[str, str]:
    """Versions of what fingerprinting runs on (numpy, scipy, ffmpeg), for stage.json."""
    from importlib.metadata import version

    from audioprep.core.media import ffmpeg_version

    return {"numpy": version("numpy"), "scipy": version("scipy"), "ffmpeg": ffmpeg_version()}


class LandmarksEngine(FingerprinterEngine):
    """Spectral-peak landmark hashes (:mod:`audioprep.dsp.fingerprint`) of 8 kHz mono audio;
    the functions above do the work."""

    name = "landmarks"
    family = "fingerprint"
    devices = ("cpu",)
    runtime = "numpy"
    summary = "spectral-peak landmark hashes of 8 kHz audio (numpy, scipy; no model)"

    def fingerprint(self, path: Path) -> Fingerprint:
        from audioprep.dsp.fingerprint import analyse

        x, stats = decode_8k(path)
        return {**analyse(x), "stats": stats}

    def fingerprint_file(
        self, path: Path, out_dir: Path, item_id: str, *, features: bool
    ) -> dict[str, Any]:
        return fingerprint_file(path, out_dir, item_id, features=features)

    @classmethod
    def versions(cls) -> dict[str, str]:
        return tool_versions()
