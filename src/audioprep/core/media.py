"""ffmpeg and ffprobe: finding them, probing media, and clear messages when they are missing."""

from __future__ import annotations

import functools
import json
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from audioprep.errors import AudioprepError, ItemError

FFMPEG_HINT = (
    "install it with `make ffmpeg` (Debian/Ubuntu: `sudo apt-get install ffmpeg`, "
    "macOS: `brew install ffmpeg`)"
)

#: File extensions picked up when a folder is walked.
MEDIA_EXTENSIONS = frozenset(
    {".wav", ".flac", ".mp3", ".m4a", ".mp4", ".webm", ".ogg", ".opus", ".oga", ".aac", ".wma"}
    | {".aif", ".aiff", ".mkv", ".mov", ".avi", ".3gp"}
)


def require_ffmpeg() -> None:
    """Raise a one-sentence AudioprepError if ffmpeg or ffprobe is not on PATH."""
    missing = [tool for tool in ("ffmpeg", "ffprobe") if shutil.which(tool) is None]
    if missing:
        raise AudioprepError(f"{' and '.join(missing)} not found on PATH: {FFMPEG_HINT}.")


@functools.lru_cache(maxsize=1)
def ffmpeg_version() -> str:
    """The ffmpeg version string, e.g. ``5.1.9-0+deb12u1``."""
    try:
        out = subprocess.run(["ffmpeg", "-version"], capture_output=True, text=True, check=True)
    except (OSError, subprocess.CalledProcessError):
        return "missing"
    first = out.stdout.splitlines()[0] if out.stdout else ""
    return first.split()[2] if first.startswith("ffmpeg version") else first


def decode_chunks(
    path: Path, *, chunk_frames: int, sample_rate: int, channels: int, sample_format: str = "s16"
) -> Iterator[Any]:
    """Decode any media with ffmpeg to raw PCM (``s16`` or ``f32``) at ``sample_rate`` and
    ``channels``, streaming: yields arrays of shape ``(m, channels)``, ``m <= chunk_frames``.
    A decoding failure raises ItemError once the stream ends."""
    import numpy as np

    codec, dtype = {"s16": ("pcm_s16le", "<i2"), "f32": ("pcm_f32le", "<f4")}[sample_format]
    cmd = [
        "ffmpeg",
        "-nostdin",
        "-v",
        "error",
        "-i",
        str(path),
        "-f",
        codec[4:],
        "-acodec",
        codec,
        "-ar",
        str(sample_rate),
        "-ac",
        str(channels),
        "pipe:1",
    ]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert proc.stdout is not None and proc.stderr is not None
    frame = np.dtype(dtype).itemsize * channels
    try:
        while True:
            data = proc.stdout.read(chunk_frames * frame)
            if not data:
                break
            usable = len(data) // frame * frame
            yield np.frombuffer(data[:usable], dtype=dtype).reshape(-1, channels)
    finally:
        proc.stdout.close()
        err = proc.stderr.read().decode("utf-8", "replace")
        proc.stderr.close()
        if proc.wait() != 0:
            raise ItemError(f"ffmpeg could not decode it: {last_line(err)}")


def pcm16_chunks(path: Path, *, chunk_samples: int, sample_rate: int = 16000) -> Iterator[Any]:
    """Mono signed 16-bit samples (1-D int16 arrays) of any media: the conversion
    inaSpeechSegmenter itself makes (``-acodec pcm_s16le -ar 16000 -ac 1``)."""
    for chunk in decode_chunks(
        path, chunk_frames=chunk_samples, sample_rate=sample_rate, channels=1
    ):
        yield chunk[:, 0]


def sound_info(path: Path) -> Any:
    """``soundfile.info`` of a file, or ItemError saying why libsndfile cannot read it."""
    import soundfile as sf

    try:
        return sf.info(str(path))
    except (sf.LibsndfileError, RuntimeError) as exc:
        detail = str(exc).split(": ", 1)[-1] if ": " in str(exc) else str(exc)
        raise ItemError(f"not a readable audio file (libsndfile: {detail})") from None


@dataclass(frozen=True)
class ProbeInfo:
    """What ffprobe says about a media file's first audio stream."""

    duration: float
    sample_rate: int
    channels: int
    codec: str
    container: str
    has_video: bool
    warnings: tuple[str, ...]


def last_line(text: str | bytes | None) -> str:
    """The last non-blank line of a tool's output (its error message), for errors.jsonl."""
    if isinstance(text, bytes):
        text = text.decode("utf-8", "replace")
    lines = [ln.strip() for ln in (text or "").strip().splitlines() if ln.strip()]
    return lines[-1] if lines else "no message"


_KEEP_CONTAINERS = {"WAV": "wav", "WAVEX": "wav", "RF64": "wav", "FLAC": "flac", "AIFF": "aiff"}
_KEEP_SUBTYPES = {"PCM_16", "PCM_24", "PCM_32", "FLOAT", "DOUBLE"}
_EXACT_DTYPES = {"PCM_16": "int16", "PCM_24": "int32", "PCM_32": "int32", "FLOAT": "float32"}


def output_format(info: Any) -> tuple[str, str]:
    """``(extension, subtype)`` for writing audio derived from a file with ``soundfile`` ``info``.

    wav, flac and aiff keep their container and sample type; anything else (mp3, ogg, ...)
    becomes 16-bit wav, and flac keeps only the sample types flac stores.
    """
    ext = _KEEP_CONTAINERS.get(info.format)
    subtype = info.subtype if ext and info.subtype in _KEEP_SUBTYPES else "PCM_16"
    if ext == "flac" and subtype not in ("PCM_16", "PCM_24"):
        ext = "wav"
    return ext or "wav", subtype


_CODECS = {
    "PCM_16": "pcm_s16le",
    "PCM_24": "pcm_s24le",
    "PCM_32": "pcm_s32le",
    "FLOAT": "pcm_f32le",
    "DOUBLE": "pcm_f64le",
}


def codec_fields(ext: str, subtype: str) -> dict[str, str]:
    """The ``container`` and ``codec`` fields of audio written as ``ext`` with ``subtype``."""
    return {"container": ext, "codec": "flac" if ext == "flac" else _CODECS.get(subtype, subtype)}


def exact_dtype(subtype: str) -> str:
    """The numpy dtype that reads and writes ``subtype`` without changing a sample."""
    return _EXACT_DTYPES.get(subtype, "float64")


def probe(path: Path) -> ProbeInfo:
    """Probe ``path`` with ffprobe; raise ItemError with a clear reason if it is not usable audio.

    Truncated files that still declare their full length (an mp3 with a Xing header cut short)
    are reported as truncated.
    """
    if path.is_dir():
        raise ItemError("is a directory, not an audio file")
    if not path.exists():
        raise ItemError("no such file")
    if path.stat().st_size == 0:
        raise ItemError("file is empty (0 bytes)")
    cmd = ["ffprobe", "-v", "warning", "-show_format", "-show_streams", "-of", "json", str(path)]
    proc = subprocess.run(cmd, capture_output=True)
    stderr = proc.stderr.decode("utf-8", "replace")
    if proc.returncode != 0:
        raise ItemError(f"not a readable media file (ffprobe: {last_line(stderr)})")
    info = json.loads(proc.stdout or b"{}")
    streams = info.get("streams", [])
    audio = [s for s in streams if s.get("codec_type") == "audio"]
    if not audio:
        kinds = ", ".join(sorted({s.get("codec_type", "?") for s in streams})) or "none"
        raise ItemError(f"has no audio stream (streams: {kinds})")
    stream = audio[0]
    fmt = info.get("format", {})
    duration = float(stream.get("duration") or fmt.get("duration") or 0.0)
    warnings = tuple(ln.strip() for ln in stderr.splitlines() if ln.strip())
    if any("filesize and duration do not match" in w for w in warnings):
        raise ItemError(
            f"truncated: the file declares {duration:.2f} s but is shorter on disk "
            "(ffprobe: filesize and duration do not match)"
        )
    if duration <= 0:
        raise ItemError("has no measurable duration (empty or corrupt audio stream)")
    return ProbeInfo(
        duration=duration,
        sample_rate=int(stream.get("sample_rate") or 0),
        channels=int(stream.get("channels") or 0),
        codec=str(stream.get("codec_name", "")),
        container=str(fmt.get("format_name", "")),
        has_video=any(
            s.get("codec_type") == "video" and not s.get("disposition", {}).get("attached_pic")
            for s in streams
        ),
        warnings=warnings,
    )
