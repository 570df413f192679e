"""What every speaker engine embeds: 16 kHz mono audio, its voiced samples, 1.6 s windows.

``decode`` reads a file as 16 kHz mono float32; ``voiced`` keeps its voiced samples
(Resemblyzer's ``preprocess_wav``: volume normalised, long silences cut by webrtcvad) and says
where each was in the clip, so a speaker change found in the voiced audio can be placed in the
clip; ``window_starts`` gives the partial windows (1.6 s, 1.3 a second) every engine embeds for
turn detection; ``embed_long`` measures an item of any length in bounded memory with any
:class:`audioprep.engines.speaker.base.Embedder`.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

SR = 16000
#: The partial windows: 160 frames of 10 ms, 1.3 windows a second (77 frames apart).
WINDOW_FRAMES = 160
HOP_SAMPLES = 160
RATE = 1.3
MIN_COVERAGE = 0.75


def quiet_imports() -> None:
    # webrtcvad (inside resemblyzer) imports pkg_resources, which warns on every import
    warnings.filterwarnings("ignore", message=".*pkg_resources.*", category=UserWarning)


def decode(path: Path) -> Any:
    """The file decoded to 16 kHz mono float32 in [-1, 1) (ffmpeg), shape ``(n,)``."""
    import numpy as np

    from audioprep.core.media import pcm16_chunks

    # 16 kHz files libsndfile reads (every clip after convert and slice): read in this process,
    # as ffmpeg would give them; a subprocess per clip was half the stage's time (profiled)
    try:
        import soundfile as sf

        info = sf.info(str(path))
        if info.samplerate == SR and info.channels in (1, 2) and info.frames > 0:
            pcm = sf.read(str(path), dtype="int16", always_2d=True)[0]
            if info.channels == 2:  # ffmpeg's -ac 1: the mean of the two
                pcm = np.round(pcm.astype(np.float32).mean(axis=1)).astype(np.int16)
            else:
                pcm = pcm[:, 0]
            return pcm.astype(np.float32) / 32768
    except (ImportError, RuntimeError, OSError, ValueError):
        pass  # not for libsndfile: ffmpeg decodes it
    pcm = np.concatenate(list(pcm16_chunks(path, chunk_samples=SR * 60)) or [np.zeros(0, "<i2")])
    return pcm.astype(np.float32) / 32768


def voiced(wav: Any) -> tuple[Any, Any]:
    """``(voiced, where)``: Resemblyzer's ``preprocess_wav(wav, 16000)`` and, for each of its
    samples, the index of that sample in ``wav`` (int64, same length).

    >>> import numpy as np
    >>> v, where = voiced(np.zeros(16000, dtype=np.float32))
    >>> len(v) == len(where) <= 16000
    True
    """
    import numpy as np

    quiet_imports()
    from resemblyzer.audio import normalize_volume
    from resemblyzer.hparams import (
        audio_norm_target_dBFS,
        vad_max_silence_length,
        vad_moving_average_width,
        vad_window_length,
    )
    from scipy.ndimage import binary_dilation

    if not len(wav):
        return np.zeros(0, np.float32), np.zeros(0, np.int64)
    with np.errstate(divide="ignore"):
        wav = normalize_volume(wav, audio_norm_target_dBFS, increase_only=True)
    # trim_long_silences, keeping the mask
    import webrtcvad

    win = (vad_window_length * SR) // 1000
    wav = wav[: len(wav) - (len(wav) % win)]
    # the bytes struct.pack(f"{n}h", *ints) gives, without a Python int per sample (a 3-hour
    # item took 17 GB that way)
    pcm = np.round(wav * 32767).astype("<i2").tobytes()
    vad = webrtcvad.Vad(mode=3)
    flags = np.array(
        [
            vad.is_speech(pcm[s * 2 : (s + win) * 2], sample_rate=SR)
            for s in range(0, len(wav), win)
        ],
        dtype=float,
    )
    width = vad_moving_average_width
    padded = np.concatenate((np.zeros((width - 1) // 2), flags, np.zeros(width // 2)))
    ret = np.cumsum(padded, dtype=float)
    ret[width:] = ret[width:] - ret[:-width]
    mask = np.round(ret[width - 1 :] / width).astype(bool)
    mask = binary_dilation(mask, np.ones(vad_max_silence_length + 1))
    mask = np.repeat(mask, win)
    where = np.flatnonzero(mask)
    return wav[where].astype(np.float32), where.astype(np.int64)


def window_starts(n_samples: int) -> list[int]:
    """Start sample of each partial window Resemblyzer takes of ``n_samples`` voiced samples
    (each window is 1.6 s long)."""
    import numpy as np

    frame_step = int(np.round((SR / RATE) / HOP_SAMPLES))
    n_frames = int(np.ceil((n_samples + 1) / HOP_SAMPLES))
    steps = max(1, n_frames - WINDOW_FRAMES + frame_step + 1)
    starts = list(range(0, steps, frame_step))
    last = starts[-1] * HOP_SAMPLES
    coverage = (n_samples - last) / (WINDOW_FRAMES * HOP_SAMPLES)
    if coverage < MIN_COVERAGE and len(starts) > 1:
        starts = starts[:-1]
    return [s * HOP_SAMPLES for s in starts]


#: Items longer than this (samples at 16 kHz) are measured in blocks, in bounded memory.
LONG_SAMPLES = SR * 600
#: Voiced audio embedded per block of a long item (samples).
BLOCK_SAMPLES = SR * 120


def voiced_mask(wav: Any) -> Any:
    """The boolean per-sample mask of Resemblyzer's ``trim_long_silences`` on ``wav`` (int16
    or volume-normalised float in [-1, 1]), shape ``(len(wav) - len(wav) % 480,)``."""
    import numpy as np

    quiet_imports()
    import webrtcvad
    from resemblyzer.hparams import (
        vad_max_silence_length,
        vad_moving_average_width,
        vad_window_length,
    )
    from scipy.ndimage import binary_dilation

    win = (vad_window_length * SR) // 1000
    wav = wav[: len(wav) - (len(wav) % win)]
    if not len(wav):
        return np.zeros(0, dtype=bool)
    pcm = np.round(wav * 32767).astype("<i2").tobytes()
    vad = webrtcvad.Vad(mode=3)
    flags = np.array(
        [vad.is_speech(pcm[i * 2 : (i + win) * 2], SR) for i in range(0, len(wav), win)],
        dtype=float,
    )
    width = vad_moving_average_width
    padded = np.concatenate((np.zeros((width - 1) // 2), flags, np.zeros(width // 2)))
    ret = np.cumsum(padded, dtype=float)
    ret[width:] = ret[width:] - ret[:-width]
    mask = np.round(ret[width - 1 :] / width).astype(bool)
    mask = binary_dilation(mask, np.ones(vad_max_silence_length + 1))
    return np.repeat(mask, win)


def embed_long(embedder: Any, path: Path, *, batch_windows: int = 256) -> dict[str, Any]:
    """A long item's voiced seconds, utterance embedding and partials, in bounded memory.

    Two streaming passes over ffmpeg's decode: the loudness (for Resemblyzer's volume
    normalisation), then the voiced samples (webrtcvad, per decoded minute), embedded in blocks
    of :data:`BLOCK_SAMPLES` voiced samples. Memory holds one block and the partials (256
    floats per 0.77 s of voiced audio), not the item. Returns ``{"seconds", "embedding",
    "partials" (k, 256), "starts" (k,) window starts in the item (s), "duration" (s)}``;
    ``embedding`` is None with under one window of voiced audio.
    """
    import numpy as np

    from audioprep.core.media import pcm16_chunks

    quiet_imports()
    from resemblyzer.hparams import audio_norm_target_dBFS

    chunk = SR * 60
    total, n = 0.0, 0
    for pcm in pcm16_chunks(path, chunk_samples=chunk):
        x = pcm.astype(np.float64) / 32768
        total += float((x * x).sum())
        n += len(x)
    rms = np.sqrt(total / max(n, 1))
    change = audio_norm_target_dBFS - 20 * np.log10(rms) if rms > 0 else 0.0
    gain = 10 ** (change / 20) if change > 0 else 1.0  # increase_only, as preprocess_wav
    parts, starts, carry, carry_at = [], [], np.zeros(0, np.float32), np.zeros(0, np.int64)
    voiced_n, at = 0, 0

    def flush(block: Any, block_at: Any) -> None:
        for _, p in embedder.embed_many([block], batch_windows=batch_windows):
            parts.append(p)
        for s in window_starts(len(block))[: len(p)]:
            starts.append(int(block_at[min(s, len(block_at) - 1)]))

    for pcm in pcm16_chunks(path, chunk_samples=chunk):
        x = (pcm.astype(np.float32) / 32768) * gain
        mask = voiced_mask(x)
        where = np.flatnonzero(mask)
        voiced_n += len(where)
        carry = np.concatenate([carry, x[where]])
        carry_at = np.concatenate([carry_at, where + at])
        at += len(pcm)
        while len(carry) >= BLOCK_SAMPLES + SR:
            flush(carry[:BLOCK_SAMPLES], carry_at[:BLOCK_SAMPLES])
            carry, carry_at = carry[BLOCK_SAMPLES:], carry_at[BLOCK_SAMPLES:]
    if len(carry) >= SR or not parts and len(carry):
        flush(carry, carry_at)
    partials = np.concatenate(parts) if parts else np.zeros((0, 256), np.float32)
    embedding = None
    if len(partials):
        raw = partials.mean(axis=0)
        embedding = raw / np.linalg.norm(raw)
    return {
        "seconds": voiced_n / SR,
        "embedding": embedding,
        "partials": partials,
        "starts": np.array(starts, dtype=np.float64) / SR,
        "duration": at / SR,
    }
