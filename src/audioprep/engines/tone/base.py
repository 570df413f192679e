"""The tone family: a tone classifier gives class probabilities of tone vectors (its result:
an array ``(n, len(labels))``, one row per vector, in the order of ``labels``).

Every classifier is an :class:`audioprep.engines.base.Engine` with ``family = "tone"`` and the
:class:`ToneClassifier` protocol; its model is a file the user trained (``audioprep
tone-train``), given as the ``model`` option.

>>> from audioprep.engines.base import names
>>> names("tone")
['tone']
"""

from __future__ import annotations

from typing import Any, Protocol, runtime_checkable

#: Class probabilities ``(n, len(labels))``, float64, rows summing to 1.
Probabilities = Any


@runtime_checkable
class ToneClassifier(Protocol):
    """Class probabilities of tone vectors ``(n, 180)`` computed at ``sample_rate``."""

    labels: list[str]
    sample_rate: int

    def predict_proba(self, x: Any) -> Probabilities: ...
