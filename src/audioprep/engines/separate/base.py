"""The separate family: a separator splits audio into stems (its result: name -> array).

Every separator is an :class:`audioprep.engines.base.Engine` with ``family = "separate"`` and
the :class:`Separator` protocol. It declares the models it offers as a literal class
attribute ``models = ("2stems", ...)``; the separate stage's ``--model`` takes
``ENGINE:MODEL`` (``spleeter:2stems``), its choices read from the registry without importing
any engine (:func:`model_choices`).

>>> model_choices()[:1]
['spleeter:2stems']
"""

from __future__ import annotations

from typing import Any, ClassVar, Protocol, runtime_checkable

from audioprep.engines.base import Engine, available

#: What a separator returns: stem name ("vocals", "accompaniment", "drums"...) -> audio of the
#: input's shape ``(frames, channels)``, float32.
Stems = dict[str, Any]


@runtime_checkable
class Separator(Protocol):
    """Splits audio ``(frames, channels)`` float32 at ``sample_rate`` into stems."""

    sample_rate: int
    channels: int

    def separate(self, x: Any) -> Stems: ...


class SeparatorEngine(Engine):
    """Base of separators. Settings option: ``model`` (one of ``models``)."""

    family = "separate"
    models: ClassVar[tuple[str, ...]] = ()
    sample_rate: int = 44100
    channels: int = 2

    def separate(self, x: Any) -> Stems:
        raise NotImplementedError


def model_choices() -> list[str]:
    """``ENGINE:MODEL`` for every separator and model it declares (no engine imported)."""
    return [f"{e.name}:{m}" for e in available("separate") for m in e.attr("models", ())]
