"""The asr family: a recogniser turns clips into :class:`Transcript` (its one result type).

An engine takes 16 kHz mono float32 audio (one array per clip) and returns one
:class:`Transcript` per clip, word times in seconds from the clip's start. Every recogniser is
an :class:`audioprep.engines.base.Engine` with ``family = "asr"`` and the
:class:`Recogniser` protocol; what differs between recognisers (the default model, how a
model name is found, the language) is an attribute or method of the engine
(:class:`RecogniserEngine`), so the transcribe stage never branches on an engine's name.

>>> from audioprep.engines.base import names
>>> names("asr")
['vosk', 'whisper']
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any, ClassVar, Protocol, runtime_checkable

from audioprep.core.media import pcm16_chunks
from audioprep.engines.base import Engine
from audioprep.errors import ItemError

SR = 16000
#: Whisper's window: clips longer than this are cut into pieces no longer than it.
WINDOW_S = 30.0


@dataclasses.dataclass
class Transcript:
    """One clip's transcript. ``words``: dicts ``word, start, end, probability``."""

    text: str
    language: str | None = None
    language_prob: float | None = None
    words: list[dict[str, Any]] = dataclasses.field(default_factory=list)
    #: What a language detector heard (whisper), when that is not ``language``.
    detected_language: str | None = None
    detected_prob: float | None = None


@runtime_checkable
class Recogniser(Protocol):
    """Transcribes clips: 16 kHz mono float32 arrays ``(n,)`` in, one Transcript each out."""

    def transcribe_many(self, audios: list[Any]) -> list[Transcript]: ...


class RecogniserEngine(Engine):
    """Base of recognisers. Settings options they may read: ``model`` (the name asked for),
    ``model_path`` (:meth:`resolve_model`'s answer), ``language`` (None: detect),
    ``compute_type``, ``beam_size``, ``initial_prompt``, ``batch_size``, ``fallback``,
    ``max_new_tokens``."""

    family = "asr"
    #: The model used when ``--model`` is not given.
    default_model: ClassVar[str] = ""

    @classmethod
    def resolve_model(cls, name: str, model_dir: Path, *, download: bool) -> Path:
        """The model folder for ``name`` (a path, or a name under the model directory);
        UsageError naming what to put where when there is none."""
        raise NotImplementedError

    def transcribe_many(self, audios: list[Any]) -> list[Transcript]:
        raise NotImplementedError

    def transcribe_files(self, paths: list[Path]) -> list[tuple[Transcript, int]]:
        """``(transcript, samples at 16 kHz)`` of each file. By default the clips are decoded
        whole and decoded together (:meth:`transcribe_many`); an engine that streams a file in
        bounded memory overrides this."""
        audios = [load_audio(p) for p in paths]
        return list(zip(self.transcribe_many(audios), (len(a) for a in audios), strict=True))


def load_audio(path: Path) -> Any:
    """The clip as 16 kHz mono float32 in [-1, 1] (ffmpeg decodes any format)."""
    import numpy as np

    chunks = [c.astype(np.float32) / 32768.0 for c in pcm16_chunks(path, chunk_samples=SR * 60)]
    if not chunks:
        raise ItemError("the audio decodes to no samples")
    return np.concatenate(chunks)


def split_points(audio: Any, *, window_s: float = WINDOW_S, search_s: float = 5.0) -> list[int]:
    """Sample offsets that cut ``audio`` (1-D, 16 kHz) into pieces of at most ``window_s``:
    each cut is at the quietest 50 ms within the last ``search_s`` seconds before the window
    ends, so a long clip is cut in a pause rather than inside a word. Returns the piece
    starts, first 0.

    >>> import numpy as np
    >>> x = np.ones(SR * 70, dtype=np.float32); x[SR * 27 : SR * 27 + 1600] = 0
    >>> [round(s / SR, 2) for s in split_points(x)]
    [0.0, 27.0, 52.0]
    """
    import numpy as np

    n = len(audio)
    window, search, hop = int(window_s * SR), int(search_s * SR), SR // 20
    starts = [0]
    while n - starts[-1] > window:
        lo = starts[-1] + window - search
        seg = np.asarray(audio[lo : starts[-1] + window], dtype=np.float32)
        frames = len(seg) // hop
        energy = (seg[: frames * hop].reshape(frames, hop) ** 2).mean(axis=1)
        starts.append(lo + int(np.argmin(energy)) * hop)
    return starts


def clamp_words(words: list[dict[str, Any]], duration: float) -> list[dict[str, Any]]:
    """Word times kept inside ``[0, duration]`` and in order, rounded to 10 ms.

    >>> words = [{"word": "a", "start": -0.1, "end": 0.5},
    ...          {"word": "b", "start": 0.9, "end": 1.3}]
    >>> clamp_words(words, 1.0)
    [{'word': 'a', 'start': 0.0, 'end': 0.5}, {'word': 'b', 'start': 0.9, 'end': 1.0}]
    """
    out = []
    for w in words:
        start = min(max(0.0, float(w["start"])), duration)
        end = min(max(start, float(w["end"])), duration)
        out.append({**w, "start": round(start, 2), "end": round(end, 2)})
    return out


def join_words(words: list[str], language: str | None) -> str:
    """Words joined into text: with spaces, or without for languages written without them."""
    unspaced = (language or "") in ("zh", "ja", "th", "lo", "my", "yue")
    return ("" if unspaced else " ").join(w for w in words if w)
