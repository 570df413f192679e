"""silero-vad: speech / non-speech only, faster than inaSpeechSegmenter, weights in its package.

The audio is decoded by ffmpeg to 16 kHz mono and streamed through the model 512 samples (32 ms)
at a time with its recurrent state carried, exactly as ``get_speech_timestamps`` does on a whole
tensor; the speech probabilities (one float per 32 ms) are then turned into timestamps by the
package's own ``get_speech_timestamps_from_probs``. Memory stays bounded at any length and the
result equals a whole-file run.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from audioprep.core.media import pcm16_chunks
from audioprep.engines.base import Settings, package_versions
from audioprep.engines.segment.base import Segment, SegmenterEngine
from audioprep.errors import AudioprepError, UsageError

SR = 16000
WINDOW = 512  # samples per model step at 16 kHz


class SileroEngine(SegmenterEngine):
    """The silero-vad JIT model shipped in the silero-vad package, loaded once."""

    name = "silero"
    family = "segment"
    devices = ("cpu",)
    runtime = "torch"
    summary = "silero-vad: speech/nonspeech only, faster (steps 32 ms at a time: CPU by design)"

    def __init__(self, *, threads: int = 1) -> None:
        try:
            import torch
            from silero_vad import get_speech_timestamps_from_probs, load_silero_vad
        except ImportError as exc:
            raise AudioprepError(
                f"silero-vad is not installed ({exc}); run `make setup`, or "
                "`pip install torch==2.13.0 packaging && pip install --no-deps silero-vad==6.2.3`."
            ) from None
        self.torch = torch
        self.to_timestamps = get_speech_timestamps_from_probs
        self.model = load_silero_vad()
        torch.set_num_threads(max(1, threads))

    def probabilities(self, path: Path, *, window_s: float = 300.0) -> tuple[list[float], int]:
        """Speech probability of every 32 ms window, and the number of samples."""
        torch = self.torch
        self.model.reset_states()
        probs: list[float] = []
        carry = np.zeros(0, dtype=np.float32)
        n = 0
        chunk = max(WINDOW, int(window_s * SR) // WINDOW * WINDOW)
        with torch.inference_mode():
            for pcm in pcm16_chunks(path, chunk_samples=chunk):
                n += len(pcm)
                x = np.concatenate([carry, pcm.astype(np.float32) / 32768])
                usable = len(x) // WINDOW * WINDOW
                for i in range(0, usable, WINDOW):
                    probs.append(self.model(torch.from_numpy(x[i : i + WINDOW]), SR).item())
                carry = x[usable:]
            if len(carry):
                last = np.pad(carry, (0, WINDOW - len(carry)))
                probs.append(self.model(torch.from_numpy(last), SR).item())
        return probs, n

    @classmethod
    def from_settings(cls, settings: Settings) -> SileroEngine:
        """The engine for the segment stage's settings (it uses the thread count only)."""
        return cls(threads=settings.threads)

    @classmethod
    def check(cls, settings: Settings) -> None:
        if settings.device != "cpu":
            raise UsageError(
                "--engine silero runs on the CPU (it steps 32 ms at a time, faster there); "
                f"drop --device {settings.device}."
            )

    @classmethod
    def versions(cls) -> dict[str, str]:
        return package_versions("silero-vad", "torch")

    def close(self) -> None:
        self.__dict__.pop("model", None)

    def segment(self, path: Path, *, window_s: float = 300.0) -> list[Segment]:
        """Segments ``(label, start_s, end_s)`` labelled speech / nonspeech, covering the item."""
        probs, n = self.probabilities(path, window_s=window_s)
        if n == 0:
            return []
        stamps = self.to_timestamps(probs, sampling_rate=SR, audio_length_samples=n)
        return fill_gaps([(s["start"] / SR, s["end"] / SR) for s in stamps], n / SR)


def fill_gaps(speech: list[tuple[float, float]], total: float) -> list[Segment]:
    """Speech spans plus ``nonspeech`` between them, covering ``[0, total]``, rounded to 1 ms.

    >>> fill_gaps([(0.5, 1.0)], 2.0)
    [('nonspeech', 0.0, 0.5), ('speech', 0.5, 1.0), ('nonspeech', 1.0, 2.0)]
    """
    out: list[Segment] = []
    t = 0.0
    for start, end in speech:
        start, end = round(start, 3), round(end, 3)
        if start > t:
            out.append(("nonspeech", t, start))
        out.append(("speech", start, end))
        t = end
    if round(total, 3) > t:
        out.append(("nonspeech", t, round(total, 3)))
    return out
