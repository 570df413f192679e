"""Tone models: the 180-value tone vector of a file, and a small classifier trained on it.

:func:`train_tone_model` trains a scikit-learn MLP on standardised tone vectors of labelled
files (folders named by label, or RAVDESS file names) and writes a model file; :class:`ToneModel`
reads one and gives class probabilities. The model file is a plain ``.npz`` (no pickle): the
scaler's mean and scale, the network's weights, the labels and a JSON header with the format
version, so a model from another version or a damaged file is refused with a clear message.
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
import zipfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np

from audioprep.dsp.npz import npy_header
from audioprep.engines.base import Engine, Settings, package_versions
from audioprep.errors import AudioprepError, NonFiniteAudio, UsageError

MODEL_FORMAT = "audioprep-tone-model"
MODEL_VERSION = 1
#: Every tone vector is computed at this rate (librosa.load's default, as in the workflow).
TONE_RATE = 22050
#: RAVDESS names: modality-channel-EMOTION-intensity-statement-repetition-actor.
RAVDESS = re.compile(r"^\d\d-\d\d-(\d\d)-\d\d-\d\d-\d\d-\d\d$")
RAVDESS_EMOTIONS = {
    "01": "neutral",
    "02": "calm",
    "03": "happy",
    "04": "sad",
    "05": "angry",
    "06": "fearful",
    "07": "disgust",
    "08": "surprised",
}
AUDIO_SUFFIXES = {".wav", ".flac", ".mp3", ".ogg", ".m4a", ".opus", ".aiff", ".aif", ".webm"}


def one_blas_thread() -> Any:
    """A context in which BLAS runs single-threaded. The feature maths is many small matrix
    products, which a multi-threaded BLAS slows down (measured 70x on a loaded 2-core
    machine); workers are the parallelism."""
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # pragma: no cover - scikit-learn brings it
        import contextlib

        return contextlib.nullcontext()
    return threadpool_limits(limits=1, user_api="blas")


def mono_blocks(path: Path, *, sample_rate: int, block: int = 1 << 16) -> Iterator[np.ndarray]:
    """Mono float32 blocks ``(m,)`` of any media at ``sample_rate``, bounded memory.

    wav, flac and aiff are read with libsndfile (channels averaged) and, at another rate,
    resampled with soxr's streaming resampler; anything else is decoded and resampled by
    ffmpeg (a process per file, which costs more than the analysis on short clips).
    """
    import soundfile as sf

    from audioprep.core.media import decode_chunks

    try:
        fh = sf.SoundFile(str(path))
    except (sf.LibsndfileError, RuntimeError):
        fh = None
    if fh is not None and fh.format in ("WAV", "WAVEX", "RF64", "FLAC", "AIFF"):
        with fh:
            resampler = None
            if fh.samplerate != sample_rate:
                import soxr

                resampler = soxr.ResampleStream(fh.samplerate, sample_rate, 1, dtype="float32")
            while True:
                data = fh.read(block, dtype="float32", always_2d=True)
                last = len(data) < block
                mono = data.mean(axis=1, dtype=np.float32) if data.shape[1] > 1 else data[:, 0]
                mono = np.ascontiguousarray(mono)
                if not np.isfinite(mono).all():
                    raise NonFiniteAudio()
                if resampler is not None:
                    mono = resampler.resample_chunk(mono, last=last)
                if len(mono):
                    yield mono
                if last:
                    return
    if fh is not None:
        fh.close()
    for chunk in decode_chunks(
        Path(path), chunk_frames=block, sample_rate=sample_rate, channels=1, sample_format="f32"
    ):
        if not np.isfinite(chunk).all():
            raise NonFiniteAudio()
        yield chunk[:, 0]


def file_tone_vector(path: Path, *, sample_rate: int = TONE_RATE) -> np.ndarray:
    """The tone vector ``(180,)`` of a media file, decoded at ``sample_rate``."""
    from audioprep.dsp.features import tone_stream

    return tone_stream(mono_blocks(path, sample_rate=sample_rate), sr=sample_rate)


def label_of(path: Path, root: Path) -> str:
    """A training file's label: the RAVDESS emotion of its name, else its top folder's name.

    >>> label_of(Path("/d/Actor_01/03-01-05-01-02-01-01.wav"), Path("/d"))
    'angry'
    >>> label_of(Path("/d/speech/a/x.flac"), Path("/d"))
    'speech'
    """
    match = RAVDESS.match(path.stem)
    if match and match.group(1) in RAVDESS_EMOTIONS:
        return RAVDESS_EMOTIONS[match.group(1)]
    rel = path.relative_to(root)
    if len(rel.parts) < 2:
        raise UsageError(
            f"{path} is not in a folder named by its label and has no RAVDESS name "
            "(put files in LABELLED_DIR/LABEL/)"
        )
    return rel.parts[0]


def labelled_files(root: Path) -> list[tuple[Path, str]]:
    """``(file, label)`` for every audio file under ``root``, sorted by path."""
    root = Path(root)
    if not root.is_dir():
        raise UsageError(f"{root} is not a folder of labelled audio")
    files = sorted(p for p in root.rglob("*") if p.is_file() and p.suffix.lower() in AUDIO_SUFFIXES)
    return [(p, label_of(p, root)) for p in files]


@dataclasses.dataclass
class ToneModel:
    """A standardiser and an MLP over tone vectors; :meth:`predict_proba` in plain numpy."""

    labels: list[str]
    mean: np.ndarray  # (180,)
    scale: np.ndarray  # (180,)
    weights: list[np.ndarray]  # per layer (in, out)
    biases: list[np.ndarray]  # per layer (out,)
    activation: str = "relu"
    out_activation: str = "softmax"
    sample_rate: int = TONE_RATE
    info: dict[str, Any] = dataclasses.field(default_factory=dict)

    def predict_proba(self, x: np.ndarray) -> np.ndarray:
        """Class probabilities ``(n, len(labels))`` of tone vectors ``x`` ``(n, 180)``."""
        h = (np.asarray(x, np.float64) - self.mean) / self.scale
        acts: dict[str, Callable[[np.ndarray], np.ndarray]] = {
            "relu": lambda a: np.maximum(a, 0),
            "tanh": np.tanh,
            "logistic": lambda a: 1 / (1 + np.exp(-a)),
            "identity": lambda a: a,
        }
        for i, (w, b) in enumerate(zip(self.weights, self.biases, strict=True)):
            h = h @ w + b
            if i < len(self.weights) - 1:
                h = acts[self.activation](h)
        if self.out_activation == "logistic":  # binary: one output unit, P(labels[1])
            p = 1 / (1 + np.exp(-h[:, 0]))
            return np.stack([1 - p, p], axis=1)
        h = h - h.max(axis=1, keepdims=True)
        e = np.exp(h)
        return e / e.sum(axis=1, keepdims=True)

    def save(self, path: Path) -> None:
        """Write the model file (atomically)."""
        header = {
            "format": MODEL_FORMAT,
            "version": MODEL_VERSION,
            "labels": self.labels,
            "activation": self.activation,
            "out_activation": self.out_activation,
            "sample_rate": self.sample_rate,
            "layers": len(self.weights),
            "info": self.info,
        }
        arrays = {"header": np.frombuffer(json.dumps(header).encode(), dtype=np.uint8)}
        arrays.update(mean=self.mean, scale=self.scale)
        for i, (w, b) in enumerate(zip(self.weights, self.biases, strict=True)):
            arrays[f"w{i}"], arrays[f"b{i}"] = w, b
        path = Path(path)
        tmp = path.with_name(f".{path.name}.tmp")
        with open(tmp, "wb") as fh:
            np.savez(fh, **arrays)
        os.replace(tmp, path)

    @classmethod
    def load(cls, path: Path) -> ToneModel:
        """Read a model file, checked whole and with limits before it is used; UsageError
        naming the problem for anything else (see :func:`_check_members` and
        :meth:`_check`): a damaged or hostile file is refused once, in ``check()``, never
        item by item."""
        path = Path(path)
        if not path.is_file():
            raise UsageError(f"tone model {path} does not exist")
        try:
            members = _check_members(path)
            if "header" not in members:
                raise ValueError("it has no header")
            with np.load(path, allow_pickle=False) as data:
                raw = bytes(data["header"])
                header = json.loads(raw.decode("utf-8"))
                if not isinstance(header, dict):
                    raise ValueError("its header is not a JSON object")
                if header.get("format") != MODEL_FORMAT:
                    raise ValueError("its header is not an audioprep tone model's")
                if header.get("version") != MODEL_VERSION:
                    raise _VersionError(header.get("version"))
                n = header.get("layers")
                if not isinstance(n, int) or isinstance(n, bool) or not 1 <= n <= MAX_LAYERS:
                    raise ValueError(f"its number of layers is {n!r}, not 1 to {MAX_LAYERS}")
                labels = header.get("labels")
                if not isinstance(labels, list) or not all(isinstance(x, str) for x in labels):
                    raise ValueError("its labels are not a list of names")
                rate = header.get("sample_rate")
                if not isinstance(rate, int) or isinstance(rate, bool):
                    raise ValueError(f"its sample_rate is {rate!r}, not a whole number")
                info = header.get("info") or {}
                if not isinstance(info, dict):
                    raise ValueError("its info is not a JSON object")
                model = cls(
                    labels=list(labels),
                    mean=np.asarray(data["mean"], np.float64),
                    scale=np.asarray(data["scale"], np.float64),
                    weights=[np.asarray(data[f"w{i}"], np.float64) for i in range(n)],
                    biases=[np.asarray(data[f"b{i}"], np.float64) for i in range(n)],
                    activation=str(header.get("activation")),
                    out_activation=str(header.get("out_activation")),
                    sample_rate=rate,
                    info=info,
                )
            model._check()
        except _VersionError as exc:
            raise UsageError(
                f"tone model {path} has format version {exc.args[0]!r}; this audioprep reads "
                f"version {MODEL_VERSION}: train it again with `audioprep tone-train`"
            ) from None
        except (
            OSError,
            ValueError,
            KeyError,
            TypeError,
            RecursionError,
            zipfile.BadZipFile,
            EOFError,
        ) as exc:
            reason = str(exc) if isinstance(exc, ValueError) else type(exc).__name__
            raise UsageError(
                f"tone model {path} is not a readable audioprep tone model ({reason[:200]}); "
                "make one with `audioprep tone-train LABELLED_DIR MODEL`"
            ) from None
        return model

    def _check(self) -> None:
        """ValueError unless the model can work: known activations, distinct labels that fit
        the output layer, layer shapes that chain from the 180-value tone vector, a sample
        rate tone vectors are made at, finite numbers and a scale above zero."""
        from audioprep.dsp.features import TONE_SIZE

        if self.activation not in ACTIVATIONS:
            raise ValueError(f"its activation {self.activation!r} is not one of {ACTIVATIONS}")
        if self.out_activation not in ("softmax", "logistic"):
            raise ValueError(f"its output activation {self.out_activation!r} is unknown")
        if not 2 <= len(self.labels) <= MAX_LABELS or len(set(self.labels)) != len(self.labels):
            raise ValueError(f"it needs 2 to {MAX_LABELS} distinct labels, not {self.labels!r}")
        if self.out_activation == "logistic" and len(self.labels) != 2:
            raise ValueError("a logistic output has exactly 2 labels")
        if not MIN_RATE <= self.sample_rate <= MAX_RATE:
            raise ValueError(f"its sample_rate {self.sample_rate} is not {MIN_RATE}-{MAX_RATE} Hz")
        if self.mean.shape != (TONE_SIZE,) or self.scale.shape != (TONE_SIZE,):
            raise ValueError(f"its mean and scale are not {TONE_SIZE} values")
        width = TONE_SIZE
        for i, (w, b) in enumerate(zip(self.weights, self.biases, strict=True)):
            if w.ndim != 2 or b.ndim != 1 or w.shape[0] != width or b.shape[0] != w.shape[1]:
                raise ValueError(f"its layer {i} shapes {w.shape}, {b.shape} do not chain")
            width = w.shape[1]
        if width != (1 if self.out_activation == "logistic" else len(self.labels)):
            raise ValueError(f"its output layer has {width} units for {len(self.labels)} labels")
        arrays = [self.mean, self.scale, *self.weights, *self.biases]
        if not all(np.isfinite(a).all() for a in arrays):
            raise ValueError("it holds NaN or infinite numbers")
        if not (self.scale > 0).all():
            raise ValueError("its scale has zero or negative values")


#: Limits of a model file (checked before anything in it is used).
MAX_MODEL_BYTES = 256 << 20
MAX_HEADER_BYTES = 1 << 20
MAX_LAYERS = 16
MAX_LABELS = 1000
MIN_RATE, MAX_RATE = 8000, 192000
ACTIVATIONS = ("relu", "tanh", "logistic", "identity")


def _check_members(path: Path) -> dict[str, tuple[tuple[int, ...], np.dtype]]:
    """``{name: (shape, dtype)}`` of a model file's arrays, from their headers only;
    ValueError unless each is stored as ``np.savez`` writes it (uncompressed: nothing can
    expand past the file's own size), numeric, at most 2-D and of the size its shape says."""
    if path.stat().st_size > MAX_MODEL_BYTES:
        raise ValueError(f"it is larger than {MAX_MODEL_BYTES >> 20} MB")
    out: dict[str, tuple[tuple[int, ...], np.dtype]] = {}
    with zipfile.ZipFile(path) as zf:
        for item in zf.infolist():
            name = item.filename
            if not name.endswith(".npy") or item.compress_type != zipfile.ZIP_STORED:
                raise ValueError(f"its member {name!r} is not a stored array")
            shape, dtype, start = npy_header(zf, item)
            if dtype.hasobject or dtype.kind not in "fiub" or len(shape) > 2:
                raise ValueError(f"its member {name} is {dtype} of shape {shape}")
            if start + int(np.prod(shape, dtype=object)) * dtype.itemsize != item.file_size:
                raise ValueError(f"its member {name} claims shape {shape} but holds other bytes")
            if name == "header.npy" and item.file_size > MAX_HEADER_BYTES:
                raise ValueError("its header is over 1 MB")
            out[name[: -len(".npy")]] = (shape, dtype)
    return out


def check_model_target(model_path: Path, labelled_dir: Path) -> None:
    """Refuse, before any training, a MODEL path that would be lost or would destroy
    something: one inside LABELLED_DIR (an input), a folder, a device, a pipe or a link, a
    file that is not a tone model, or a folder that does not exist.

    >>> check_model_target(Path("/nonexistent-dir/m.tone.npz"), Path("/tmp"))  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    audioprep.errors.UsageError: the folder of MODEL /nonexistent-dir/m.tone.npz does not exist; ...
    """
    import stat

    parent = model_path.absolute().parent
    if not parent.is_dir():
        raise UsageError(f"the folder of MODEL {model_path} does not exist; create it first")
    where = parent.resolve() / model_path.name
    root = labelled_dir.resolve()
    if where == root or root in where.parents:
        raise UsageError(
            f"MODEL {model_path} is inside LABELLED_DIR {labelled_dir}: it would replace or "
            "join the training files; write it elsewhere"
        )
    try:
        mode = os.lstat(model_path).st_mode
    except FileNotFoundError:
        return
    if not stat.S_ISREG(mode):
        raise UsageError(
            f"MODEL {model_path} exists and is not a plain file (a folder, device, pipe or "
            "link); give the path of a new file"
        )
    if os.path.getsize(model_path) > 0:
        try:
            with zipfile.ZipFile(model_path) as zf:
                is_model = "header.npy" in zf.namelist()
        except (zipfile.BadZipFile, OSError):
            is_model = False
        if not is_model:
            raise UsageError(
                f"MODEL {model_path} exists and is not a tone model; give a new file name "
                "(or delete it)"
            )


class _VersionError(Exception):
    pass


class ToneEngine(Engine):
    """The tone engine: a :class:`ToneModel` read from the file given as the ``model`` option.

    >>> ToneEngine.name, ToneEngine.family
    ('tone', 'tone')
    """

    name = "tone"
    family = "tone"
    devices = ("cpu",)
    runtime = "numpy"
    summary = "an MLP over 180-value tone vectors, trained with `audioprep tone-train`"
    options = ("model",)

    def __init__(self, model: ToneModel) -> None:
        self.model = model
        self.labels = model.labels
        self.sample_rate = model.sample_rate

    @classmethod
    def from_settings(cls, settings: Settings) -> ToneEngine:
        return cls(ToneModel.load(Path(settings.option("model"))))

    def predict_proba(self, x: np.ndarray) -> np.ndarray:
        """Class probabilities ``(n, len(labels))`` of tone vectors ``x`` ``(n, 180)``."""
        return self.model.predict_proba(x)

    @classmethod
    def versions(cls) -> dict[str, str]:
        return package_versions("librosa", "scikit-learn")


def train_tone_model(
    labelled_dir: str | os.PathLike[str],
    model_path: str | os.PathLike[str],
    *,
    test_size: float = 0.25,
    seed: int = 0,
    hidden: tuple[int, ...] = (256,),
    max_iter: int = 500,
    progress: Callable[[int, int], None] | None = None,
) -> dict[str, Any]:
    """Train a tone classifier from ``labelled_dir`` and write it to ``model_path``.

    Files are labelled by their top folder under ``labelled_dir`` (or their RAVDESS emotion);
    a stratified ``test_size`` share is held out. Returns the held-out accuracy, the counts and
    the confusion matrix (rows: true label, columns: predicted, in ``labels`` order).
    """
    from sklearn.metrics import accuracy_score, confusion_matrix
    from sklearn.model_selection import train_test_split
    from sklearn.neural_network import MLPClassifier
    from sklearn.preprocessing import StandardScaler

    check_model_target(Path(model_path), Path(labelled_dir))
    if not (isinstance(test_size, int | float) and 0 < test_size < 1):
        raise UsageError(f"--test-size is the share held out, between 0 and 1, not {test_size}")
    pairs = labelled_files(Path(labelled_dir))
    labels = sorted({label for _, label in pairs})
    if len(labels) < 2:
        raise UsageError(
            f"{labelled_dir} needs files of at least 2 labels; found {labels or 'none'}"
        )
    counts = {label: sum(1 for _, x in pairs if x == label) for label in labels}
    if min(counts.values()) < 2:
        raise UsageError(f"each label needs at least 2 files to hold one out; counts: {counts}")
    vectors = []
    for i, (path, _) in enumerate(pairs):
        try:
            with one_blas_thread():
                vectors.append(file_tone_vector(path))
        except Exception as exc:  # noqa: BLE001 - name the file that failed
            raise AudioprepError(f"{path}: {exc}") from None
        if progress:
            progress(i + 1, len(pairs))
    x = np.stack(vectors)
    y = np.array([labels.index(label) for _, label in pairs])
    n_test = max(len(labels), int(round(test_size * len(y))))
    if len(y) - n_test < len(labels):
        raise UsageError(
            f"--test-size {test_size:g} holds out {n_test} of {len(y)} files, leaving fewer "
            f"than one per label ({len(labels)}) to train on: use a smaller share"
        )
    if not np.isfinite(x).all():
        raise UsageError("a tone vector is not finite (NaN or infinite audio?): check the files")
    x_tr, x_te, y_tr, y_te = train_test_split(x, y, test_size=n_test, random_state=seed, stratify=y)
    scaler = StandardScaler().fit(x_tr)
    clf = MLPClassifier(
        hidden_layer_sizes=hidden, max_iter=max_iter, random_state=seed, early_stopping=False
    )
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # ConvergenceWarning on small sets
        clf.fit(scaler.transform(x_tr), y_tr)
    scale = np.where(scaler.scale_ > 0, scaler.scale_, 1.0)
    model = ToneModel(
        labels=[labels[int(c)] for c in clf.classes_],
        mean=scaler.mean_.astype(np.float64),
        scale=scale.astype(np.float64),
        weights=[w.astype(np.float64) for w in clf.coefs_],
        biases=[b.astype(np.float64) for b in clf.intercepts_],
        activation=clf.activation,
        out_activation=clf.out_activation_,
        info={"train": len(y_tr), "test": len(y_te), "counts": counts, "hidden": list(hidden)},
    )
    pred = model.predict_proba(x_te).argmax(axis=1)
    truth = np.searchsorted(clf.classes_, y_te)
    accuracy = float(accuracy_score(truth, pred))
    model.info["test_accuracy"] = round(accuracy, 4)
    model.save(Path(model_path))
    return {
        "accuracy": accuracy,
        "labels": model.labels,
        "train": int(len(y_tr)),
        "test": int(len(y_te)),
        "counts": counts,
        "confusion": confusion_matrix(truth, pred, labels=range(len(model.labels))).tolist(),
        "model": str(model_path),
    }
