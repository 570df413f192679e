"""The fingerprint family: a fingerprinter turns an item into a :data:`Fingerprint` (landmark
hashes and their times, optionally frame features) that ``dedupe`` and ``repeats`` match.

Every fingerprinter is an :class:`audioprep.engines.base.Engine` with ``family =
"fingerprint"`` and the :class:`Fingerprinter` protocol.

>>> from audioprep.engines.base import names
>>> names("fingerprint")
['landmarks']
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from audioprep.engines.base import Engine

#: ``{"hashes", "times", "features", "energy"}`` arrays and ``"stats"`` (level statistics).
Fingerprint = dict[str, Any]


@runtime_checkable
class Fingerprinter(Protocol):
    """Fingerprints the audio at a path; also saves one for the corpus stages to match."""

    def fingerprint(self, path: Path) -> Fingerprint: ...

    def fingerprint_file(
        self, path: Path, out_dir: Path, item_id: str, *, features: bool
    ) -> dict[str, Any]: ...


class FingerprinterEngine(Engine):
    """Base of fingerprinters."""

    family = "fingerprint"

    def fingerprint(self, path: Path) -> Fingerprint:
        raise NotImplementedError

    def fingerprint_file(
        self, path: Path, out_dir: Path, item_id: str, *, features: bool
    ) -> dict[str, Any]:
        raise NotImplementedError
