"""The speaker family: an embedder turns voiced audio into speaker vectors (its result:
:data:`Embedding`, the utterance's vector and its partial windows' vectors).

Every embedder is an :class:`audioprep.engines.base.Engine` with ``family = "speaker"`` and
the :class:`Embedder` protocol. Encoders place voices on different cosine scales, so each
declares its :class:`VoiceScale`: the similarities speaker-filter and speakers decide with,
measured per encoder (docs/stages/speaker-filter.md, docs/stages/speakers.md), and its
impostor bank.

>>> from audioprep.engines.base import names
>>> names("speaker")
['campplus', 'resemblyzer']
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any, ClassVar, Protocol, runtime_checkable

from audioprep.engines.base import Engine

#: ``(embedding (d,), partials (k, d))``: an utterance's L2-normalised vector, and the vectors
#: of the ``k`` partial windows (1.6 s, :mod:`audioprep.engines.speaker.voiced`) (float32).
Embedding = tuple[Any, Any]
DATA = Path(__file__).parent / "data"
#: The encoder speaker-filter and speakers use unless ``--engine`` says otherwise.
DEFAULT = "campplus"


def engine_choices() -> tuple[str, ...]:
    """What the speaker stages' ``--engine`` takes: the registry's speaker engines.

    >>> "campplus" in engine_choices()
    True
    """
    from audioprep.engines.base import names

    return tuple(names("speaker")) or (DEFAULT,)


@dataclasses.dataclass(frozen=True)
class VoiceScale:
    """An encoder's cosine similarities: where one voice ends and another begins.

    speaker-filter:
    ``auto_z`` (``--threshold auto`` keeps S-normalised scores at least this, and with
    ``floor`` cosines at least ``floor``);
    ``fixed`` (``--threshold`` when no calibration can be made); ``cluster`` (voices stop
    merging below it); ``join`` (a cluster this near the target is the voice rendered another
    way; ``join_high``: with the bank); ``enrol_above`` / ``enrol_floor`` (re-enrolment);
    ``cohort_below`` (clearly another voice); ``turn`` (two sides of a clip less similar are
    candidate turns); ``split_margin`` / ``split_strong`` (a change is confirmed by that margin
    of evidence); ``split_below`` / ``split_gap`` (or by the rejected side scoring under
    ``split_below`` and ``split_gap`` under the kept side, for an encoder that places other
    voices that low; None: no such rule).

    speakers:
    ``auto_low`` .. ``auto_high`` (where the automatic stop is searched); ``auto_fallback``;
    ``speakers_turn``; ``name`` (a reference names a voice this near); ``speakers_join``
    (voices whose centroids are this near are one voice through two channels; None: no join).
    """

    fixed: float
    cluster: float
    join: float
    join_high: float
    enrol_above: float
    enrol_floor: float
    cohort_below: float
    turn: float
    split_margin: float
    split_strong: float
    auto_low: float
    auto_high: float
    auto_fallback: float
    speakers_turn: float
    name: float
    speakers_join: float | None = None
    split_below: float | None = None
    split_gap: float = 0.0
    auto_z: float = 2.0
    floor: float | None = None


@runtime_checkable
class Embedder(Protocol):
    """Embeds utterances: mono float32 arrays ``(n,)`` at ``sample_rate`` in, one
    :data:`Embedding` each out (windows of all utterances batched together)."""

    sample_rate: int

    def embed_many(self, wavs: list[Any], *, batch_windows: int = 256) -> list[Embedding]: ...


class EmbedderEngine(Engine):
    """Base of speaker embedders."""

    family = "speaker"
    sample_rate: int = 16000
    dim: ClassVar[int] = 256
    scale: ClassVar[VoiceScale]
    #: float16 embeddings of voices no benchmark uses (data/README.md), ``(n, dim)``
    bank_file: ClassVar[Path | None] = None

    def embed_many(self, wavs: list[Any], *, batch_windows: int = 256) -> list[Embedding]:
        raise NotImplementedError

    @classmethod
    def version_tag(cls) -> str:
        """What the embeddings depend on (a cache of embeddings is valid only for one tag)."""
        return "-".join(f"{k}-{v}" for k, v in sorted(cls.versions().items())) or cls.name

    @classmethod
    def load_bank(cls) -> Any:
        """The impostor bank ``(n, dim)`` float64, rows of unit length; ``(0, dim)`` without one."""
        import numpy as np

        if cls.bank_file is None or not cls.bank_file.exists():
            return np.zeros((0, cls.dim))
        bank = np.load(cls.bank_file, allow_pickle=False).astype(np.float64)
        return bank / np.linalg.norm(bank, axis=1, keepdims=True)
