"""DNSMOS P.835 (SIG, BAK, OVRL) and P.808 with onnxruntime, from the ONNX models that the PyPI
package speechmos ships (``speechmos/dnsmos_models/sig_bak_ovr.onnx`` and ``model_v8.onnx``).

The models are located without importing speechmos (its module imports librosa and requests);
the features and windows are :mod:`audioprep.dsp.dnsmos`, written to equal the reference. One
:class:`DnsmosEngine` holds both sessions; create it once per worker. :meth:`DnsmosEngine.stream`
scores 16 kHz mono audio fed in blocks, keeping at most one window plus a block in memory.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any

import numpy as np

from audioprep.dsp import dnsmos as d
from audioprep.engines.base import Settings, package_versions
from audioprep.engines.quality.base import ScorerEngine
from audioprep.errors import AudioprepError, UsageError

PRIMARY = "dnsmos_models/sig_bak_ovr.onnx"
P808 = "dnsmos_models/model_v8.onnx"
PROVIDERS = {"cpu": "CPUExecutionProvider", "cuda": "CUDAExecutionProvider"}


def model_dir() -> Path:
    """The speechmos package folder that holds ``dnsmos_models/``."""
    spec = importlib.util.find_spec("speechmos")
    if spec is None or not spec.submodule_search_locations:
        raise AudioprepError(
            "DNSMOS needs the speechmos package for its models: run "
            "`pip install 'audioprep[quality]'` (or `make setup`)."
        )
    folder = Path(next(iter(spec.submodule_search_locations)))
    for rel in (PRIMARY, P808):
        if not (folder / rel).is_file():
            raise AudioprepError(f"the DNSMOS model {folder / rel} is missing from speechmos.")
    return folder


def check_device(device: str) -> None:
    """Raise AudioprepError when onnxruntime cannot run on ``device``."""
    try:
        import onnxruntime as ort
    except ImportError:
        raise AudioprepError(
            "DNSMOS needs onnxruntime: run `pip install 'audioprep[quality]'` (or `make setup`)."
        ) from None
    if device not in PROVIDERS:
        raise AudioprepError(f"unknown device {device!r}: choose from {', '.join(PROVIDERS)}.")
    if PROVIDERS[device] not in ort.get_available_providers():
        raise AudioprepError(
            f"onnxruntime here has no {PROVIDERS[device]} (it has "
            f"{', '.join(ort.get_available_providers())}): use --device cpu or install "
            "onnxruntime-gpu."
        )


class DnsmosEngine(ScorerEngine):
    """Both DNSMOS sessions, created once."""

    name = "dnsmos"
    family = "quality"
    devices = ("cpu", "cuda")
    runtime = "onnxruntime"
    summary = "DNSMOS P.835 (SIG, BAK, OVRL) and P.808, ONNX models from the speechmos package"
    sample_rate = d.SR

    options = ("hop",)

    @classmethod
    def from_settings(cls, settings: Settings) -> DnsmosEngine:
        """Settings option ``hop``: seconds between windows (1.0, the reference's)."""
        return cls(
            device=settings.device, threads=settings.threads, hop=settings.option("hop", 1.0)
        )

    @classmethod
    def check(cls, settings: Settings) -> None:
        """onnxruntime runs on the device and speechmos holds the models (UsageError)."""
        try:
            check_device(settings.device)
            model_dir()
        except AudioprepError as exc:
            raise UsageError(str(exc)) from None

    @classmethod
    def versions(cls) -> dict[str, str]:
        return package_versions("onnxruntime", "speechmos")

    def close(self) -> None:
        self.__dict__.pop("primary", None)
        self.__dict__.pop("p808", None)

    def __init__(self, *, device: str = "cpu", threads: int = 1, hop: float = 1.0) -> None:
        check_device(device)
        self.hop = float(hop)
        import onnxruntime as ort

        folder = model_dir()
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = max(1, threads)
        opts.inter_op_num_threads = 1
        providers = [PROVIDERS[device]] + (["CPUExecutionProvider"] if device != "cpu" else [])
        self.primary = ort.InferenceSession(str(folder / PRIMARY), opts, providers=providers)
        self.p808 = ort.InferenceSession(str(folder / P808), opts, providers=providers)
        self.device = device

    def window(self, segment: np.ndarray) -> tuple[float, float, float, float]:
        """``(sig, bak, ovrl, p808)`` of one 144160-sample window."""
        x = np.asarray(segment, dtype=np.float32)[np.newaxis, :]
        raw = self.primary.run(None, {"input_1": x})[0][0]
        p808 = float(
            self.p808.run(None, {"input_1": d.p808_features(segment)[np.newaxis]})[0][0][0]
        )
        sig, bak, ovrl = d.polyfit(float(raw[0]), float(raw[1]), float(raw[2]))
        return sig, bak, ovrl, p808

    def stream(self, hop: float | None = None) -> DnsmosStream:
        """A stream scoring windows ``hop`` seconds apart (default: the engine's hop, set by
        the ``hop`` option; 1.0, the reference's)."""
        return DnsmosStream(self, hop=self.hop if hop is None else hop)

    def score(self, audio: np.ndarray, hop: float | None = None) -> dict[str, Any]:
        """Scores of a whole 16 kHz mono clip, shape ``(n,)``."""
        s = self.stream(hop)
        s.feed(audio)
        return s.result()


class DnsmosStream:
    """Scores 16 kHz mono audio fed in blocks ``(m,)``; windows are scored as soon as the
    reference would certainly include them, and the audio before the next window is dropped."""

    def __init__(self, engine: DnsmosEngine, *, hop: float = 1.0) -> None:
        if not hop > 0:
            raise ValueError("the DNSMOS hop must be above 0 s")
        self.engine = engine
        self.hop = hop
        self._buf = np.zeros(0, dtype=np.float32)
        self._offset = 0  # absolute index of _buf[0]
        self.n = 0
        self._next = 0  # next window index
        self._scores: list[tuple[float, float, float, float]] = []

    def _run(self, audio: np.ndarray, offset: int, upto: int) -> None:
        """Score windows ``_next .. upto - 1`` from ``audio`` (whose first sample is ``offset``)."""
        while self._next < upto:
            start, stop = d.window_bounds(self._next, hop=self.hop)
            seg = audio[start - offset : stop - offset]
            if seg.size == d.WINDOW:
                self._scores.append(self.engine.window(seg))
            self._next += 1

    def feed(self, block: np.ndarray) -> None:
        block = np.asarray(block, dtype=np.float32).reshape(-1)
        self._buf = np.concatenate([self._buf, block])
        self.n += block.size
        if self.n < d.WINDOW:
            return
        # a window is certain once the audio so far already counts it
        upto = d.n_windows(self.n, hop=self.hop)
        if upto > self._next and d.window_bounds(upto - 1, hop=self.hop)[1] <= self.n:
            self._run(self._buf, self._offset, upto)
            keep = d.window_bounds(self._next, hop=self.hop)[0]
            self._buf = self._buf[keep - self._offset :]
            self._offset = keep

    def result(self) -> dict[str, Any]:
        """``{"sig", "bak", "ovrl", "p808", "windows"}``; ValueError for an empty clip."""
        if self.n < d.WINDOW:
            audio = d.repeat_to_window(self._buf)  # raises for an empty clip
            self._run(audio, 0, d.n_windows(audio.size, hop=self.hop))
        else:
            self._run(self._buf, self._offset, d.n_windows(self.n, hop=self.hop))
        if not self._scores:
            raise ValueError("no DNSMOS window could be scored")
        sig, bak, ovrl, p808 = (float(np.mean(v)) for v in zip(*self._scores, strict=True))
        return {
            "sig": round(sig, 4),
            "bak": round(bak, 4),
            "ovrl": round(ovrl, 4),
            "p808": round(p808, 4),
            "windows": len(self._scores),
        }
