"""Resemblyzer's voice encoder (256-d), batched across items.

``embed_batch`` computes the partial windows of many utterances in one forward pass
(``batch_windows`` windows at a time); its utterance embeddings equal
``VoiceEncoder.embed_utterance`` within float tolerance (the mean of the partials).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from audioprep.engines.base import Settings, package_versions
from audioprep.engines.speaker.base import DATA, EmbedderEngine, Embedding, VoiceScale
from audioprep.engines.speaker.voiced import (
    HOP_SAMPLES,
    RATE,
    SR,
    WINDOW_FRAMES,
    quiet_imports,
    window_starts,
)
from audioprep.errors import AudioprepError

#: Measured on clean LibriSpeech (same speaker 0.80-0.96, others <= 0.74) and on the benchmarks
#: of docs/stages/speaker-filter.md and speakers.md (LibriSpeech through codecs and beds: one
#: voice 0.62-0.96, median 0.75; two voices up to 0.85, p99 0.77).
SCALE = VoiceScale(
    fixed=0.75,
    cluster=0.7,
    join=0.8,
    join_high=0.9,
    enrol_above=0.8,
    enrol_floor=0.6,
    cohort_below=0.75,
    turn=0.9,
    split_margin=0.05,
    split_strong=0.15,
    auto_low=0.70,
    auto_high=0.82,
    auto_fallback=0.76,
    speakers_turn=0.7,
    name=0.7,
)


def encoder_version() -> str:
    """What the embeddings depend on: resemblyzer's version and its weights file's size and
    modification time (a cache of embeddings is valid only for the same encoder)."""
    from importlib.metadata import version

    try:
        import resemblyzer

        weights = Path(resemblyzer.__file__).parent / "pretrained.pt"
        stat = weights.stat()
        tag = f"{stat.st_size}-{int(stat.st_mtime)}"
    except (ImportError, OSError):
        tag = "unknown"
    return f"resemblyzer-{version('resemblyzer')}-{tag}-window{WINDOW_FRAMES}-rate{RATE}"


def load_encoder(threads: int, device: str = "cpu") -> Any:
    quiet_imports()
    try:
        import torch
        from resemblyzer import VoiceEncoder
    except ImportError as exc:
        raise AudioprepError(
            f"resemblyzer is not installed ({exc}); run `make setup`, or "
            "`pip install torch==2.13.0 'setuptools<81' resemblyzer`."
        ) from None
    torch.set_num_threads(max(1, threads))
    return VoiceEncoder(device, verbose=False)


def embed_batch(
    encoder: Any, wavs: list[Any], *, batch_windows: int = 256
) -> list[tuple[Any, Any]]:
    """``[(embedding (256,), partials (k, 256))]`` for each voiced utterance in ``wavs``.

    The partial windows of all utterances go through the network together, ``batch_windows``
    at a time; each utterance's embedding is the normalised mean of its partials, as in
    ``VoiceEncoder.embed_utterance``.
    """
    import numpy as np
    import torch

    quiet_imports()
    from resemblyzer.audio import wav_to_mel_spectrogram

    mels, counts = [], []
    for wav in wavs:
        starts = window_starts(len(wav))
        stop = starts[-1] + WINDOW_FRAMES * HOP_SAMPLES
        if stop >= len(wav):
            wav = np.pad(wav, (0, stop - len(wav)), "constant")
        mel = wav_to_mel_spectrogram(wav)
        for s in starts:
            f = s // HOP_SAMPLES
            mels.append(mel[f : f + WINDOW_FRAMES])
        counts.append(len(starts))
    out = []
    with torch.no_grad():
        for i in range(0, len(mels), max(1, batch_windows)):
            x = torch.from_numpy(np.array(mels[i : i + batch_windows])).to(encoder.device)
            out.append(encoder(x).cpu().numpy())
    partials = np.concatenate(out) if out else np.zeros((0, 256), np.float32)
    result, at = [], 0
    for k in counts:
        p = partials[at : at + k]
        at += k
        raw = p.mean(axis=0)
        result.append((raw / np.linalg.norm(raw), p))
    return result


class ResemblyzerEngine(EmbedderEngine):
    """Resemblyzer's VoiceEncoder, loaded once per worker; the functions above do the work
    (``decode`` and ``voiced`` prepare an item, :meth:`embed_many` embeds a batch)."""

    name = "resemblyzer"
    family = "speaker"
    devices = ("cpu", "cuda")
    runtime = "torch"
    summary = "Resemblyzer's voice encoder (256-d, webrtcvad-voiced audio), batched across items"
    sample_rate = SR
    dim = 256
    scale = SCALE
    bank_file = DATA / "impostors.npy"

    def __init__(self, encoder: Any) -> None:
        self.encoder = encoder

    @classmethod
    def from_settings(cls, settings: Settings) -> ResemblyzerEngine:
        return cls(load_encoder(settings.threads, settings.device))

    def embed_many(self, wavs: list[Any], *, batch_windows: int = 256) -> list[Embedding]:
        return embed_batch(self.encoder, wavs, batch_windows=batch_windows)

    def close(self) -> None:
        self.__dict__.pop("encoder", None)

    @classmethod
    def versions(cls) -> dict[str, str]:
        return package_versions("resemblyzer", "torch")

    @classmethod
    def version_tag(cls) -> str:
        return encoder_version()
