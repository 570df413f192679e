"""The speaker family: an embedder turns voiced audio into speaker vectors (its result:
:data:`Embedding`, the utterance's vector and its partial windows' vectors).

Every embedder is an :class:`audioprep.engines.base.Engine` with ``family = "speaker"`` and
the :class:`Embedder` protocol.

>>> from audioprep.engines.base import names
>>> names("speaker")
['resemblyzer']
"""

from __future__ import annotations

from typing import Any, Protocol, runtime_checkable

from audioprep.engines.base import Engine

#: ``(embedding (d,), partials (k, d))``: an utterance's L2-normalised vector, and the vectors
#: of the ``k`` windows it is the mean of (float32).
Embedding = tuple[Any, Any]


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

    def embed_many(self, wavs: list[Any], *, batch_windows: int = 256) -> list[Embedding]:
        raise NotImplementedError
