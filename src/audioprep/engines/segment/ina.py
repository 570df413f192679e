"""inaSpeechSegmenter, run in windows so that memory stays bounded on multi-hour files.

inaSpeechSegmenter's own ``Segmenter.__call__`` decodes the whole file, computes all its
features and then builds one 68-frame CNN patch for every 20 ms: about 4 GB for a 2-hour
podcast. :meth:`InaEngine.segment` gives the same result with bounded memory by splitting the
work where it is local and keeping it whole where it is global:

- Features (sidekit MFCC, 10 ms frames of 25 ms, pre-emphasis per frame) are local to each
  frame: they are computed on chunks of the decoded signal that start on the 10 ms frame grid,
  so every frame is the one a whole-file run computes. Only the 24 mel energies and the
  log-energy are kept (about 70 MB for 2 hours).
- The energy threshold (mean log-energy of the whole file) and the Viterbi smoothing of the
  energy and of the CNN decisions are global: they run on the whole file's (small) arrays, with
  the package's own functions.
- The CNN patches and predictions, the memory-hungry part, are local to each patch: they are
  built and predicted ``window_s`` seconds at a time, with the package's own patch code and the
  package's own Keras model.

So the labels do not depend on the window size, joins included. Items shorter than 68 frames
(0.68 s) go through ``Segmenter.__call__`` itself.
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path
from typing import Any

import numpy as np

from audioprep.core.media import pcm16_chunks
from audioprep.engines.base import Settings, Weights, package_versions
from audioprep.engines.segment.base import Segment, SegmenterEngine
from audioprep.errors import AudioprepError, UsageError

FRAME = 160  # 10 ms at 16 kHz
WIN = 400  # 25 ms analysis window
PATCH = 68  # frames per CNN patch
HALF = PATCH // 4  # 17 patches of edge fill, as in inaSpeechSegmenter._get_patches
INA_URL = "https://github.com/ina-foss/inaSpeechSegmenter/releases/download/models/"
#: The model files, by the option that needs them.
SMN = Weights(
    "inaSpeechSegmenter",
    ("keras_speech_music_noise_cnn.hdf5",),
    INA_URL,
    used_by="segment --vad-engine smn",
)
SM = Weights(
    "inaSpeechSegmenter",
    ("keras_speech_music_cnn.hdf5",),
    INA_URL,
    used_by="segment --vad-engine sm",
)
GENDER = Weights(
    "inaSpeechSegmenter",
    ("keras_male_female_cnn.hdf5",),
    INA_URL,
    used_by="segment --detect-gender",
)


def _configure_tensorflow(device: str, threads: int) -> None:
    """Environment for TensorFlow, before it is imported."""
    os.environ["TF_CPP_MIN_LOG_LEVEL"] = "3"
    warnings.filterwarnings("ignore", module=r"keras\..*")
    warnings.filterwarnings("ignore", module=r"inaSpeechSegmenter\..*")
    warnings.filterwarnings("ignore", category=RuntimeWarning, module=r"numpy\..*")
    if device == "cpu":
        os.environ["CUDA_VISIBLE_DEVICES"] = "-1"
    import tensorflow as tf

    if threads > 0:
        try:
            tf.config.threading.set_intra_op_parallelism_threads(threads)
            tf.config.threading.set_inter_op_parallelism_threads(max(1, threads))
        except RuntimeError:  # already initialised in this process
            pass
    if device == "cuda" and not tf.config.list_physical_devices("GPU"):
        raise AudioprepError(
            "--device cuda: TensorFlow sees no CUDA GPU here; install tensorflow[and-cuda] "
            "on a machine with an NVIDIA GPU, or use --device cpu."
        )


def _use_model_dir(module: Any, model_dir: Path) -> None:
    """Make inaSpeechSegmenter load its models from the model directory when they are there.

    The package looks in /root/.keras, then in Keras' cache (fixed when Keras is imported), then
    downloads; this puts the model directory first, whatever was imported before.
    """
    original = getattr(module.get_remote, "__wrapped__", module.get_remote)

    def get_remote(model_fname: str) -> str:
        path = model_dir / "inaSpeechSegmenter" / model_fname
        return str(path) if path.is_file() else original(model_fname)

    get_remote.__wrapped__ = original  # type: ignore[attr-defined]
    module.get_remote = get_remote


class InaEngine(SegmenterEngine):
    """inaSpeechSegmenter's Segmenter, loaded once, applied in windows."""

    name = "ina"
    family = "segment"
    devices = ("cpu", "cuda")
    runtime = "tensorflow"
    summary = "inaSpeechSegmenter: speech, music, noise, silence (male/female with its model)"
    options = ("model_dir", "vad_engine", "detect_gender", "batch_size")

    def __init__(
        self,
        *,
        model_dir: Path,
        vad_engine: str = "smn",
        detect_gender: bool = False,
        batch_size: int = 256,
        device: str = "cpu",
        threads: int = 0,
        energy_ratio: float = 0.03,
    ) -> None:
        needed = [SMN if vad_engine == "smn" else SM] + ([GENDER] if detect_gender else [])
        # Keras writes keras.json into KERAS_HOME at import (before TensorFlow): a private
        # folder, never the model directory, which may be shared or read-only; the models
        # themselves are read from the model directory by _use_model_dir.
        if "KERAS_HOME" not in os.environ:
            import tempfile

            os.environ["KERAS_HOME"] = tempfile.mkdtemp(prefix="audioprep-keras-")
        missing = [m for m in needed if not m.present(model_dir)]
        _configure_tensorflow(device, threads)
        try:
            import inaSpeechSegmenter.segmenter as ina_segmenter
            from inaSpeechSegmenter import Segmenter
        except ImportError as exc:
            raise AudioprepError(
                f"inaSpeechSegmenter is not installed ({exc}); run `make setup`, or "
                "`pip install 'audioprep[segment]'` then "
                "`pip install --no-deps inaSpeechSegmenter==0.8.0`."
            ) from None
        _use_model_dir(ina_segmenter, model_dir)
        try:
            self.segmenter = Segmenter(
                vad_engine=vad_engine,
                detect_gender=detect_gender,
                batch_size=batch_size,
                energy_ratio=energy_ratio,
            )
        except Exception as exc:  # noqa: BLE001 - a download that failed: say which file
            if missing:
                raise AudioprepError(
                    missing[0].missing_message(model_dir, " and could not be downloaded")
                ) from None
            raise AudioprepError(f"inaSpeechSegmenter could not load its models: {exc}") from None
        self.batch_size = batch_size

    # -- features -------------------------------------------------------------------------
    def features(self, path: Path, *, window_s: float) -> tuple[np.ndarray, np.ndarray]:
        """``(mspec, loge)`` of the whole item, computed chunk by chunk on the frame grid."""
        from inaSpeechSegmenter.sidekit_mfcc import mfcc

        chunk_frames = max(1, int(window_s * 100))
        mspecs, loges = [], []
        carry = np.zeros(0, dtype=np.float32)
        for pcm in pcm16_chunks(path, chunk_samples=chunk_frames * FRAME):
            sig = np.concatenate([carry, pcm.astype(np.float32) / 32768])
            n_frames = (len(sig) - WIN) // FRAME + 1 if len(sig) >= WIN else 0
            if n_frames > 0:
                used = sig[: (n_frames - 1) * FRAME + WIN]
                _, loge, _, mspec = mfcc(used, get_mspec=True)
                mspecs.append(np.atleast_2d(mspec))
                loges.append(np.atleast_1d(loge))
                carry = sig[n_frames * FRAME :]
            else:
                carry = sig
        if not mspecs:
            return np.zeros((0, 24)), np.zeros(0)
        return np.concatenate(mspecs), np.concatenate(loges)

    # -- the CNN in windows ----------------------------------------------------------------
    @staticmethod
    def _patches(mspec: np.ndarray, first: int, stop: int) -> tuple[np.ndarray, np.ndarray]:
        """Patches ``first:stop`` of ``_get_patches(mspec, 68, 2)`` without building the others."""
        from inaSpeechSegmenter.segmenter import _get_patches

        n_real = (len(mspec) - PATCH) // 2 + 1
        real = np.clip(np.arange(first, stop) - HALF, 0, n_real - 1)
        lo, hi = int(real.min()), int(real.max())
        # _get_patches on this slice gives its own edge fill; take the real patches from it
        data, finite = _get_patches(np.ascontiguousarray(mspec[2 * lo : 2 * hi + PATCH]), PATCH, 2)
        offset = HALF  # the slice's first real patch sits after its left fill
        idx = real - lo + offset
        return data[idx], finite[idx]

    def _dnn(
        self, model: Any, mspec: np.ndarray, lseg: list[tuple[str, int, int]], window_s: float
    ) -> list[tuple[str, int, int]]:
        """inaSpeechSegmenter's DnnSegmenter.__call__ on one item (see :meth:`_dnn_many`)."""
        return self._dnn_many(model, [(mspec, lseg)], window_s)[0]

    def _dnn_many(
        self,
        model: Any,
        items: list[tuple[np.ndarray, list[tuple[str, int, int]]]],
        window_s: float,
    ) -> list[list[tuple[str, int, int]]]:
        """inaSpeechSegmenter's DnnSegmenter.__call__ on several items, patches predicted together.

        Like the package, patches of all the segments to classify (of every item given) are sent
        to the model together (few ``predict`` calls on short items), but never more than
        ``window_s`` seconds' worth (``window_s * 50`` patches) at a time. Each patch's
        prediction depends on that patch alone, so an item's labels do not depend on which
        items it was batched with.
        """
        from inaSpeechSegmenter.pyannote_viterbi import viterbi_decoding
        from inaSpeechSegmenter.segmenter import _binidx2seglist
        from inaSpeechSegmenter.viterbi_utils import diag_trans_exp

        if model.nmel < 24:
            items = [(mspec[:, : model.nmel], lseg) for mspec, lseg in items]
        step = max(1, int(window_s * 50))  # patches per window (one patch per 20 ms)
        pieces = [
            (n, a, min(stop, a + step))
            for n, (_, lseg) in enumerate(items)
            for lab, start, stop in lseg
            if lab == model.inlabel
            for a in range(start, stop, step)
        ]
        preds: dict[tuple[int, int, int], np.ndarray] = {}
        finites: dict[tuple[int, int, int], np.ndarray] = {}
        batch: list[tuple[int, int, int]] = []

        def flush() -> None:
            built = [self._patches(items[n][0], a, b) for n, a, b in batch]
            x = np.concatenate([patches for patches, _ in built])[..., None]
            out = model.nn.predict(x, batch_size=self.batch_size, verbose=0)
            pos = 0
            for key, (_, finite) in zip(batch, built, strict=True):
                preds[key] = out[pos : pos + key[2] - key[1]]
                finites[key] = finite
                pos += key[2] - key[1]
            batch.clear()

        size = 0
        for piece in pieces:
            if batch and size + piece[2] - piece[1] > step:
                flush()
                size = 0
            batch.append(piece)
            size += piece[2] - piece[1]
        if batch:
            flush()

        results = []
        for n, (_, lseg) in enumerate(items):
            ret: list[tuple[str, int, int]] = []
            for lab, start, stop in lseg:
                if lab != model.inlabel:
                    ret.append((lab, start, stop))
                    continue
                mine = [(n, a, min(stop, a + step)) for a in range(start, stop, step)]
                r = np.concatenate([preds.pop(k) for k in mine])
                r[~np.concatenate([finites.pop(k) for k in mine]), :] = 0.5
                pred = viterbi_decoding(
                    np.log(r), diag_trans_exp(model.viterbi_arg, len(model.outlabels))
                )
                for lab2, start2, stop2 in _binidx2seglist(pred):
                    ret.append((model.outlabels[int(lab2)], start2 + start, stop2 + start))
            results.append(ret)
        return results

    @classmethod
    def from_settings(cls, settings: Settings) -> InaEngine:
        """The engine for the segment stage's settings (``detect_gender`` None: when the
        gender model is in the model directory)."""
        if settings.model_dir is None:
            raise ValueError("inaSpeechSegmenter needs a model directory")
        used = cls.used_options(settings)
        return cls(
            model_dir=settings.model_dir,
            vad_engine=used.get("vad_engine", "smn"),
            detect_gender=used["detect_gender"],
            batch_size=used.get("batch_size", 256),
            device=settings.device,
            threads=settings.threads,
        )

    @classmethod
    def check(cls, settings: Settings) -> None:
        super().check(settings)
        if settings.option("vad_engine", "smn") not in ("smn", "sm"):
            raise UsageError("--vad-engine must be smn (speech/music/noise) or sm (speech/music).")

    @classmethod
    def used_options(cls, settings: Settings) -> dict[str, Any]:
        """The options, ``detect_gender`` resolved (None: the gender model is present)."""
        used = super().used_options(settings)
        if used.get("detect_gender") is None:
            used["detect_gender"] = bool(
                settings.model_dir is not None and GENDER.present(settings.model_dir)
            )
        return used

    @classmethod
    def versions(cls) -> dict[str, str]:
        return package_versions("inaSpeechSegmenter", "tensorflow-cpu", "tensorflow", "keras")

    @classmethod
    def weights(cls) -> tuple[Weights, ...]:
        return (SMN, SM, GENDER)

    def close(self) -> None:
        self.__dict__.pop("segmenter", None)

    def segment(self, path: Path, *, window_s: float = 300.0) -> list[Segment]:
        """Labelled segments ``(label, start_s, end_s)`` covering the item, in order."""
        return self.segment_many([path], window_s=window_s)[0]

    def segment_many(self, paths: list[Path], *, window_s: float = 300.0) -> list[list[Segment]]:
        """:meth:`segment` of several items, their CNN patches predicted in shared batches.

        Equal to segmenting each alone (the CNN sees one patch at a time). Holds every item's
        features at once: about 35 MB per hour of audio.
        """
        from inaSpeechSegmenter.segmenter import _binidx2seglist, _energy_activity

        seg = self.segmenter
        out: list[list[Segment] | None] = [None] * len(paths)
        batch: list[tuple[int, np.ndarray, list[tuple[str, int, int]]]] = []
        for n, path in enumerate(paths):
            mspec, loge = self.features(path, window_s=window_s)
            if len(loge) < PATCH:  # too short for a patch: the package's own padding path
                if len(loge) == 0:
                    out[n] = []
                else:
                    out[n] = [(lab, round(a, 2), round(b, 2)) for lab, a, b in seg(str(path))]
                continue
            lseg = [
                ("energy" if lab else "noEnergy", start, stop)
                for lab, start, stop in _binidx2seglist(
                    _energy_activity(loge, seg.energy_ratio)[::2]
                )
            ]
            batch.append((n, mspec, lseg))
        if batch:
            lsegs = self._dnn_many(seg.vad, [(m, ls) for _, m, ls in batch], window_s)
            if seg.detect_gender:
                lsegs = self._dnn_many(
                    seg.gender,
                    [(m, ls) for (_, m, _), ls in zip(batch, lsegs, strict=True)],
                    window_s,
                )
            for (n, _, _), lseg in zip(batch, lsegs, strict=True):
                out[n] = [
                    (lab, round(start * 0.02, 2), round(stop * 0.02, 2))
                    for lab, start, stop in lseg
                ]
        return [segs if segs is not None else [] for segs in out]
