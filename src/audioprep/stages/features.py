"""features: Training arrays per item (log spectrogram, log-mel, MFCC or tone vector) as .npy."""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import shutil
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from audioprep.core.params import param
from audioprep.core.stage import CorpusStage, DecideContext, FinalizeContext, ItemContext, Output
from audioprep.errors import ItemError, NonFiniteAudio, UsageError
from audioprep.manifests.records import Record

ARRAYS_DIR = "arrays"
PARTS_DIR = ".parts"  # under arrays/: per-item arrays waiting to be packed into shards
INDEX = "index.jsonl"
#: The largest array one item may make (``--pad-to`` is checked against it before any work).
MAX_ARRAY_BYTES = 4e9
#: The sample rate assumed for that check when ``--sample-rate`` is not given.
ASSUMED_RATE = 48000
ROWS_PER_COPY = 1024  # frames per block when normalising / casting the raw file


@dataclasses.dataclass(frozen=True)
class FeaturesParams:
    kind: str = param(
        "logspec",
        help="logspec (dB |STFT|), mel (dB mel power), mfcc, or tone (180-value vector).",
        choices=("logspec", "mel", "mfcc", "tone"),
    )
    frame: int = param(512, help="STFT frame (n_fft) in samples.", min=16)
    hop: int = param(256, help="STFT hop in samples.", min=1)
    n_mels: int = param(128, help="Mel bands (mel, mfcc).", min=1)
    n_mfcc: int = param(20, help="MFCC coefficients (mfcc).", min=1)
    sample_rate: int | None = param(
        None,
        help="Resample to this rate first (default: the item's own; tone: always 22050).",
        min=1000,
    )
    pad_to: float | None = param(
        None, help="Pad shorter items with zeros at the end to S seconds.", min=0.0
    )
    crop_to: float | None = param(None, help="Crop longer items to their first S seconds.", min=0.0)
    normalise: str = param(
        "none",
        help="minmax: scale each item's array to [0, 1], its min and max recorded.",
        choices=("none", "minmax"),
    )
    dtype: str = param("float32", help="Array dtype.", choices=("float32", "float16"))
    shard_size: int | None = param(
        None,
        help="Pack N items per .npz shard (with arrays/index.jsonl) instead of one .npy each.",
        min=1,
    )


class FeaturesStage(CorpusStage):
    """Writes one array per item under `OUT_DIR/arrays/` (or shards of many), referenced from
    the manifest with its shape, dtype, normalisation constants and padding/cropping.

    Matrices are `(bins, frames)` (librosa's layout), stored Fortran-ordered so that a file of
    any length is written frame by frame with bounded memory.

    Example: `audioprep features clips/ arrays/ --kind logspec --sample-rate 22050 --pad-to 0.74
    --crop-to 0.74 --normalise minmax`
    """

    name = "features"
    version = "1"
    outputs = (
        Output(
            ARRAYS_DIR,
            "one .npy per item, or .npz shards of --shard-size items with index.jsonl",
            folder=True,
            pruned=True,
        ),
    )
    Params = FeaturesParams

    def check(self) -> None:
        p = self.params
        if p.hop > p.frame:
            raise UsageError("--hop must not exceed --frame")
        if p.kind == "mfcc" and p.n_mfcc > p.n_mels:
            raise UsageError("--n-mfcc must not exceed --n-mels")
        if p.pad_to is not None and p.crop_to is not None and p.pad_to > p.crop_to:
            raise UsageError("--pad-to must not exceed --crop-to")
        if p.pad_to is not None and self.array_bytes(p.pad_to) > MAX_ARRAY_BYTES:
            raise UsageError(
                f"--pad-to {p.pad_to:g} s would make arrays of about "
                f"{self.array_bytes(p.pad_to) / 1e9:.3g} GB per item, over the "
                f"{MAX_ARRAY_BYTES / 1e9:g} GB an item may take; pad to at most "
                f"{p.pad_to * MAX_ARRAY_BYTES / self.array_bytes(p.pad_to):.0f} s."
            )
        try:
            import librosa  # noqa: F401
        except ImportError:
            raise UsageError(
                "features needs librosa: pip install 'audioprep[features]' (or make setup)"
            ) from None

    def array_bytes(self, seconds: float) -> float:
        """The size of one item's array for ``seconds`` of audio, before any work: at the
        ``--sample-rate`` (else 48 kHz, a high rate a corpus may have), its rows and bins.

        >>> FeaturesStage(FeaturesStage.Params(kind="mel", hop=256)).array_bytes(1.0)
        96000.0
        """
        p = self.params
        if p.kind == "tone":
            return 180 * 4.0
        sr = p.sample_rate or ASSUMED_RATE
        bins = {"logspec": p.frame // 2 + 1, "mel": p.n_mels, "mfcc": p.n_mfcc}[p.kind]
        size = 2 if p.dtype == "float16" else 4
        return seconds * sr / p.hop * bins * size

    # -- measure: compute and write each item's array (in a worker) -----------------------
    def measure(self, record: Record, ctx: ItemContext) -> dict[str, Any]:
        from audioprep.engines.tone.model import one_blas_thread

        with one_blas_thread():
            try:
                return self._measure(record, ctx)
            except NonFiniteAudio as exc:  # rejected with its reason, like quality/loudness
                return {"rejected": str(exc)}

    def _measure(self, record: Record, ctx: ItemContext) -> dict[str, Any]:
        import numpy as np

        from audioprep.dsp import features as F
        from audioprep.engines.tone.model import TONE_RATE, mono_blocks

        p = self.params
        src = ctx.input_audio(record)
        # the tone vector is defined at TONE_RATE (models are trained on it)
        sr = TONE_RATE if p.kind == "tone" else p.sample_rate or int(record["sample_rate"])
        pad = round(p.pad_to * sr) if p.pad_to is not None else None
        crop = round(p.crop_to * sr) if p.crop_to is not None else None
        counts = {"in": 0, "out": 0}
        blocks = _fitted(mono_blocks(src, sample_rate=sr), pad=pad, crop=crop, counts=counts)
        folder = ctx.folder(f"{ARRAYS_DIR}/{PARTS_DIR}" if p.shard_size else ARRAYS_DIR)
        ctx.tmp_dir.mkdir(parents=True, exist_ok=True)
        final = folder / f"{record['id']}.npy"
        tmp = ctx.tmp_dir / f"{os.getpid()}-{record['id']}.npy"
        info: dict[str, Any] = {"kind": p.kind, "sample_rate": sr}
        try:
            if p.kind == "tone":
                vec = F.tone_stream(blocks, sr=sr)
                info.update(frame=F.TONE_FRAME, hop=F.TONE_HOP)
                lo = hi = None
                if p.normalise == "minmax":
                    vec, lo, hi = F.minmax_normalise(vec)
                np.save(tmp, vec.astype(p.dtype))
                shape: list[int] = [int(vec.shape[0])]
            else:
                info.update(frame=p.frame, hop=p.hop)
                if p.kind != "logspec":
                    info["n_mels"] = p.n_mels
                if p.kind == "mfcc":
                    info["n_mfcc"] = p.n_mfcc
                rows = F.feature_rows(
                    blocks,
                    kind=p.kind,
                    sr=sr,
                    frame=p.frame,
                    hop=p.hop,
                    n_mels=p.n_mels,
                    n_mfcc=p.n_mfcc,
                )
                shape, lo, hi = _write_matrix(rows, tmp, normalise=p.normalise, dtype=p.dtype)
        except ValueError as exc:
            raise ItemError(f"no features: {exc}") from None
        except NonFiniteAudio:
            tmp.unlink(missing_ok=True)
            raise
        finally:
            raw = tmp.with_suffix(".raw")
            if raw.exists():
                raw.unlink()
        if counts["out"] == 0:
            tmp.unlink(missing_ok=True)
            raise ItemError("has no audio samples")
        os.replace(tmp, final)
        info.update(
            shape=shape,
            dtype=p.dtype,
            layout="(features,)" if p.kind == "tone" else "(bins, frames)",
            samples=counts["out"],
            source_samples=counts["in"],
            pad_samples=max(0, counts["out"] - counts["in"]),
            crop_samples=max(0, counts["in"] - counts["out"]),
            normalise=p.normalise,
        )
        if p.normalise == "minmax":
            info.update(min=lo, max=hi)
        if not p.shard_size:
            info["path"] = f"{ARRAYS_DIR}/{final.name}"
        return info

    # -- decide: which shard each item goes to (main process) ---------------------------
    def decide(self, measurements: dict[str, dict[str, Any]], ctx: DecideContext) -> dict[str, Any]:
        size = self.params.shard_size
        if not size:
            return {}
        ids = [i for i, m in measurements.items() if "rejected" not in m]
        where = {
            item_id: [f"{ARRAYS_DIR}/{_shard_name(n // size)}", n % size]
            for n, item_id in enumerate(ids)
        }
        return {"shards": where}

    # -- finalize: pack the shards and their index (main process, end of the run) ---------
    def finalize(
        self,
        measurements: dict[str, dict[str, Any]],
        decision: dict[str, Any],
        ctx: FinalizeContext,
    ) -> None:
        size = self.params.shard_size
        if not size:
            return
        arrays = ctx.folder(ARRAYS_DIR)
        # a resumed run packs again (items retried since may shift members): each array comes
        # from its part file, or from the shard an earlier run packed it into
        previous = _previous_shards(arrays)
        ids = [i for i, m in measurements.items() if "rejected" not in m]
        lines = []
        # every shard is packed before any is renamed into place: a member may come from an
        # earlier shard of the same name
        with contextlib.ExitStack() as renames:
            for first in range(0, len(ids), size):
                name = _shard_name(first // size)
                members = ids[first : first + size]
                tmp = renames.enter_context(ctx.writing(f"{ARRAYS_DIR}/{name}"))
                _pack(tmp, members, arrays / PARTS_DIR, previous)
                for index, item_id in enumerate(members):
                    m = measurements[item_id]
                    entry = {"id": item_id, "shard": f"{ARRAYS_DIR}/{name}", "key": item_id}
                    entry.update(index=index, shape=m["shape"], dtype=m["dtype"])
                    lines.append(json.dumps(entry))
        ctx.write_text(f"{ARRAYS_DIR}/{INDEX}", "".join(line + "\n" for line in lines))
        # left-over part files and shards of an earlier packing are pruned by the runner

    def finish(
        self,
        record: Record,
        measurement: dict[str, Any],
        decision: dict[str, Any],
        ctx: ItemContext,
    ) -> list[Record]:
        if "rejected" in measurement:
            ctx.reject(record, measurement["rejected"])
            return []
        info = dict(measurement)
        if "shards" in decision:
            shard, index = decision["shards"][record["id"]]
            info.update(shard=shard, key=record["id"], index=index)
        audio = ctx.link(ctx.input_audio(record), Path(record["audio"]).name)
        return [{**record, "audio": audio, "features": info}]

    def tool_versions(self) -> dict[str, str]:
        from importlib.metadata import version

        from audioprep.core.media import ffmpeg_version

        return {
            "librosa": version("librosa"),
            "numpy": version("numpy"),
            "ffmpeg": ffmpeg_version(),
        }


def _fitted(
    blocks: Iterator[Any], *, pad: int | None, crop: int | None, counts: dict[str, int]
) -> Iterator[Any]:
    """``blocks`` cropped to ``crop`` samples and padded with zeros to ``pad``; counts the
    samples read (``in``, the whole file even when cropped) and passed on (``out``)."""
    import numpy as np

    for block in blocks:
        counts["in"] += len(block)
        room = len(block) if crop is None else max(0, crop - counts["out"])
        if room:
            piece = block[:room]
            counts["out"] += len(piece)
            yield piece
    if pad is not None and counts["out"] < pad:
        missing = pad - counts["out"]
        counts["out"] = pad
        while missing:
            step = min(missing, 1 << 18)
            yield np.zeros(step, dtype=np.float32)
            missing -= step


def _write_matrix(
    rows: Iterator[Any], path: Path, *, normalise: str, dtype: str
) -> tuple[list[int], float | None, float | None]:
    """Write feature rows ``(m, bins)`` as a Fortran-ordered ``(bins, frames)`` .npy at
    ``path``, streaming: raw float32 rows go to a side file first (min and max tracked), then
    are copied under the final header, normalised and cast block by block."""
    import numpy as np

    raw = path.with_suffix(".raw")
    lo, hi = np.inf, -np.inf
    frames = bins = 0
    with open(raw, "wb") as fh:
        for block in rows:
            block = np.ascontiguousarray(block, dtype=np.float32)
            bins = block.shape[1]
            frames += block.shape[0]
            lo, hi = min(lo, float(block.min())), max(hi, float(block.max()))
            block.tofile(fh)
    if not frames:
        raise ValueError("the signal is empty")
    header = {
        "descr": np.lib.format.dtype_to_descr(np.dtype(dtype)),
        "fortran_order": True,
        "shape": (bins, frames),
    }
    with open(path, "wb") as out:
        np.lib.format.write_array_header_1_0(out, header)
        for first in range(0, frames, ROWS_PER_COPY):
            count = min(ROWS_PER_COPY, frames - first)
            block = np.fromfile(raw, dtype=np.float32, count=count * bins, offset=first * bins * 4)
            if normalise == "minmax":
                from audioprep.dsp.features import minmax_apply

                block = minmax_apply(block, lo=lo, hi=hi)
            block.astype(dtype).tofile(out)
    raw.unlink()
    if normalise != "minmax":
        return [bins, frames], None, None
    return [bins, frames], lo, hi


def _shard_name(number: int) -> str:
    return f"shard-{number:05d}.npz"


def _previous_shards(arrays: Path) -> dict[str, Path]:
    """Where an earlier packing put each item, read from the shards themselves (not from
    ``index.jsonl``, which may be damaged); an unreadable shard counts for nothing."""
    previous: dict[str, Path] = {}
    for shard in sorted(arrays.glob("shard-*.npz")):
        if shard.is_symlink() or not shard.is_file():
            continue
        try:
            with zipfile.ZipFile(shard) as zf:
                names = zf.namelist()
        except (OSError, zipfile.BadZipFile, ValueError):
            continue
        for name in names:
            if name.endswith(".npy"):
                previous.setdefault(name[: -len(".npy")], shard)
    return previous


def _pack(shard: Path, members: list[str], parts: Path, previous: dict[str, Path]) -> None:
    """Write an uncompressed ``.npz`` holding each member's .npy under its id, one at a time
    (``numpy.load(shard)[id]`` reads it back): from ``parts/ID.npy``, else from the shard a
    previous run put it in."""
    from audioprep.errors import AudioprepError

    with zipfile.ZipFile(shard, "w", compression=zipfile.ZIP_STORED, allowZip64=True) as zf:
        for key in members:
            part = parts / f"{key}.npy"
            with contextlib.ExitStack() as stack:
                if part.exists():
                    src = stack.enter_context(open(part, "rb"))
                elif key in previous and previous[key].exists():
                    old = stack.enter_context(zipfile.ZipFile(previous[key]))
                    src = stack.enter_context(old.open(f"{key}.npy"))
                else:
                    raise AudioprepError(
                        f"the array of {key} is missing from {parts} and from the shards: "
                        "run again with --overwrite"
                    )
                dst = stack.enter_context(zf.open(f"{key}.npy", "w", force_zip64=True))
                shutil.copyfileobj(src, dst, 1 << 20)


def load_array(in_dir: str | os.PathLike[str], record: Record) -> Any:
    """The array a ``features`` record references (from its .npy or its shard).

    >>> load_array("corpus/09-features", record).shape  # doctest: +SKIP
    (257, 64)
    """
    import numpy as np

    from audioprep.manifests.records import resolve_audio

    info = record["features"]
    if "path" in info:
        return np.load(resolve_audio(in_dir, info["path"]), allow_pickle=False)
    with np.load(resolve_audio(in_dir, info["shard"]), allow_pickle=False) as shard:
        return shard[info["key"]]
