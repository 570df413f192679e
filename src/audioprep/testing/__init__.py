"""Helpers for testing stages: manifest directories from audio files, toy stages, the CLI.

A stage's test builds its input with :func:`make_manifest_dir` and runs the stage with
:func:`audioprep.run.runner.run_stage` (or the command line with :func:`cli`)::

    >>> import tempfile
    >>> from audioprep.run.runner import run_stage
    >>> tmp = tempfile.mkdtemp()
    >>> src = make_manifest_dir(f"{tmp}/in", [sine_file(f"{tmp}/a.wav", seconds=0.5)])
    >>> [r["id"] for r in read_jsonl(src / "manifest.jsonl")]
    ['a']
    >>> summary = run_stage(ToyStage(ToyStage.Params(split=2)), f"{tmp}/out", in_dir=src,
    ...                     jobs=1, progress=False)
    >>> summary.records_out
    2

The real audio of the test suite lives in ``AUDIOPREP_SHARED`` (default ``../shared``):
:data:`LIBRI`, :data:`MUSANMIX`, :data:`SONG`; :func:`require_shared` skips a test without it.
Nothing here is imported by the toolkit itself.
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from audioprep.core.params import param
from audioprep.core.stage import CorpusStage, DecideContext, ItemContext, MapStage, WorkerContext
from audioprep.errors import ItemError
from audioprep.manifests.ids import make_id, slugify
from audioprep.manifests.records import AUDIO_DIR, MANIFEST, Record, dumps

#: The repository checkout this package runs from (tests, configs), when it runs from one.
REPO = Path(__file__).resolve().parents[3]
SHARED = Path(os.environ.get("AUDIOPREP_SHARED", REPO.parent / "shared"))
DATA = SHARED / "data"
LIBRI = DATA / "librispeech-test-other"
MUSANMIX = DATA / "musan-mix" / "musanmix.wav"
SONG = DATA / "music" / "audio_example.mp3"
MODELS = Path(os.environ.get("AUDIOPREP_MODEL_DIR", str(SHARED / "models")))


def require_shared() -> None:
    """Skip the calling test when the real test audio is not there."""
    import pytest

    if not DATA.is_dir():
        pytest.skip(f"real test audio not found at {SHARED} (set AUDIOPREP_SHARED)")


def ffmpeg(*args: str) -> None:
    """Run ffmpeg quietly (``-y``), failing on error."""
    subprocess.run(["ffmpeg", "-nostdin", "-v", "error", "-y", *args], check=True)


def cli(
    *args: Any, check: bool | None = True, process: bool = False, **kw: Any
) -> subprocess.CompletedProcess[str]:
    """Run ``audioprep ARGS`` and return what a completed process would show.

    In this process by default (typer's runner: no interpreter start-up, no imports again);
    in a real ``python -m audioprep`` process with ``process=True`` or any keyword that only a
    process takes (``env``, ``cwd``, ``timeout``, ``input`` ...): where a process is the
    point (kill, signals, start-up cost, environment). An exception that escapes the command
    in-process gives exit code 1 with its traceback on stderr, as a process would. A stage
    command run in-process gets ``-j 1`` unless the call gives ``-j``/``--jobs`` (spawning a
    worker pool is what makes a usage test slow; a test of the pool says so).
    With ``check`` a non-zero exit raises AssertionError showing stderr.

    >>> cli("--help").stdout.count("Usage")
    1
    """
    if not process and not kw:
        return _cli_in_process(args, check)
    proc = subprocess.run(
        [sys.executable, "-m", "audioprep", *map(str, args)],
        capture_output=True,
        text=True,
        **kw,
    )
    if check and proc.returncode != 0:
        raise AssertionError(f"audioprep {args} exited {proc.returncode}:\n{proc.stderr}")
    return proc


def _cli_in_process(args: tuple[Any, ...], check: bool | None) -> subprocess.CompletedProcess[str]:
    import traceback

    from typer.testing import CliRunner

    from audioprep.cli.app import app
    from audioprep.core import registry

    argv = [str(a) for a in args]
    jobs_given = any(a in ("-j", "--jobs") or a.startswith("--jobs=") for a in argv)
    if argv and argv[0] in registry.names() and not jobs_given and "--help" not in argv:
        argv += ["-j", "1"]
    result = CliRunner().invoke(app, argv, prog_name="audioprep")
    stderr = result.stderr
    code = result.exit_code
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        exc = result.exception
        stderr += "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
        code = 1
    proc = subprocess.CompletedProcess(["audioprep", *map(str, args)], code, result.stdout, stderr)
    if check and code != 0:
        raise AssertionError(f"audioprep {args} exited {code}:\n{stderr}")
    return proc


def read_jsonl(path: str | os.PathLike[str]) -> list[dict[str, Any]]:
    """The records of a JSONL file; ``[]`` when it does not exist."""
    path = Path(path)
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line]


def sine_file(
    path: str | os.PathLike[str],
    *,
    seconds: float = 1.0,
    sample_rate: int = 16000,
    freq: float = 440.0,
    channels: int = 1,
    subtype: str = "PCM_16",
) -> Path:
    """Write a sine tone (a wav or flac, by the name's suffix) and return its path."""
    import numpy as np
    import soundfile as sf

    t = np.arange(int(round(seconds * sample_rate))) / sample_rate
    y = 0.3 * np.sin(2 * np.pi * freq * t)
    if channels > 1:
        y = np.repeat(y[:, None], channels, axis=1)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(str(path), y, sample_rate, subtype=subtype)
    return path


def _probe(path: Path) -> dict[str, Any]:
    import soundfile as sf

    try:
        info = sf.info(str(path))
        return {
            "duration": info.frames / info.samplerate,
            "sample_rate": info.samplerate,
            "channels": info.channels,
        }
    except (RuntimeError, sf.LibsndfileError):
        from audioprep.core.media import probe

        found = probe(path)
        return {
            "duration": found.duration,
            "sample_rate": found.sample_rate,
            "channels": found.channels,
        }


def union_spans(spans: Iterable[Any]) -> list[list[float]]:
    """Overlapping or touching ``(start, end)`` spans merged, in order.

    >>> union_spans([(3, 4), (0, 1), (0.5, 2)])
    [[0, 2], [3, 4]]
    """
    out: list[list[float]] = []
    for s, e in sorted(spans):
        if out and s <= out[-1][1]:
            out[-1][1] = max(out[-1][1], e)
        else:
            out.append([s, e])
    return out


def arrays_manifest_dir(
    directory: str | os.PathLike[str],
    files: Mapping[str, tuple[Any, int]],
    *,
    subtype: str = "PCM_16",
    source: Any = None,
) -> Path:
    """A manifest directory of wav files written from arrays: ``{id: (samples, rate)}``.

    ``samples`` has shape ``(n,)`` or ``(n, channels)``; ``source(id)`` gives each record's
    ``source`` field (default ``{"path": "/data/test/ID.wav"}``).
    """
    import soundfile as sf

    root = Path(directory)
    (root / AUDIO_DIR).mkdir(parents=True)
    lines = []
    for item_id, (x, sr) in files.items():
        sf.write(str(root / AUDIO_DIR / f"{item_id}.wav"), x, sr, subtype=subtype)
        lines.append(
            {
                "id": item_id,
                "audio": f"{AUDIO_DIR}/{item_id}.wav",
                "duration": len(x) / sr,
                "sample_rate": sr,
                "channels": 1 if x.ndim == 1 else x.shape[1],
                "source": source(item_id) if source else {"path": f"/data/test/{item_id}.wav"},
            }
        )
    (root / MANIFEST).write_text("".join(dumps(r) + "\n" for r in lines), encoding="utf-8")
    return root


def make_manifest_dir(
    directory: str | os.PathLike[str],
    files: Iterable[str | os.PathLike[str]] | Mapping[str, str | os.PathLike[str]],
    *,
    extra: Mapping[str, Mapping[str, Any]] | None = None,
    link: bool = True,
) -> Path:
    """A finished manifest directory holding ``files`` (paths, or ``{id: path}``).

    Each file is hard-linked (``link``) or copied into ``audio/``; duration, rate and channels
    come from the file itself (soundfile, else ffprobe). ``extra`` adds fields per id.
    """
    from audioprep.core.stage import link_or_copy

    directory = Path(directory)
    (directory / AUDIO_DIR).mkdir(parents=True, exist_ok=True)
    if isinstance(files, Mapping):
        items = dict(files)
    else:  # ids from the file names (slugified), made unique with a hash where they clash
        items = {}
        for f in files:
            item_id = slugify(Path(f).stem)
            if item_id in items:
                item_id = make_id(Path(f).stem, str(Path(f).absolute()))
            items[item_id] = f
    lines = []
    for item_id, source in items.items():
        source = Path(source)
        dest = directory / AUDIO_DIR / f"{item_id}{source.suffix.lower()}"
        if link:
            link_or_copy(source, dest)
        else:
            shutil.copyfile(source, dest)
        record: Record = {
            "id": item_id,
            "audio": f"{AUDIO_DIR}/{dest.name}",
            **_probe(dest),
            "source": {"path": str(source.absolute())},
            **dict((extra or {}).get(item_id, {})),
        }
        lines.append(dumps(record) + "\n")
    (directory / MANIFEST).write_text("".join(lines), encoding="utf-8")
    return directory


@dataclasses.dataclass(frozen=True)
class ToyParams:
    """Parameters of :class:`ToyStage`."""

    fail_ids: tuple[str, ...] = param((), help="Ids that fail (ItemError).")
    reject_ids: tuple[str, ...] = param((), help="Ids that are rejected.")
    crash_ids: tuple[str, ...] = param((), help="Ids whose worker dies (os._exit).")
    split: int = param(1, help="Records made from each item.", min=1)
    sleep: float = param(0.0, help="Seconds to sleep per item.", min=0)
    tag: str = param("", help="A value copied into every record.")


class ToyStage(MapStage):
    """A small map stage for testing runners and executors (it wraps no tool).

    It hard-links each input's audio, can split an item into several records, reject some
    ids, fail on others, and sleep to make runs slow enough to interrupt.
    """

    name = "toy"
    version = "1"
    Params = ToyParams

    def setup(self, ctx: WorkerContext) -> None:
        self.setup_pid = os.getpid()
        self.setups = getattr(self, "setups", 0) + 1
        self.worker_threads = ctx.threads

    def process(self, record: Record, ctx: ItemContext) -> list[Record]:
        p = self.params
        time.sleep(p.sleep)
        if record["id"] in p.fail_ids:
            raise ItemError("asked to fail")
        if record["id"] in p.crash_ids:
            os._exit(9)  # a worker dying hard
        if record["id"] in p.reject_ids:
            ctx.reject(record, "asked to reject")
            return []
        src = ctx.input_audio(record)
        out = []
        for i in range(p.split):
            new_id = record["id"] if p.split == 1 else f"{record['id']}_{i}"
            audio = ctx.link(src, f"{new_id}{src.suffix}")
            out.append(
                {**record, "id": new_id, "audio": audio, "setup_pid": self.setup_pid, "tag": p.tag}
            )
        return out


@dataclasses.dataclass(frozen=True)
class ToyCorpusParams:
    """Parameters of :class:`ToyCorpusStage`."""

    sleep: float = param(0.0, help="Seconds to sleep per measurement.", min=0)


class ToyCorpusStage(CorpusStage):
    """A corpus stage: measures each item's duration, keeps those above the corpus median."""

    name = "toy-corpus"
    version = "1"
    Params = ToyCorpusParams

    def measure(self, record: Record, ctx: ItemContext) -> dict[str, Any]:
        time.sleep(self.params.sleep)
        return {"duration": record["duration"], "pid": os.getpid()}

    def decide(self, measurements: dict[str, dict[str, Any]], ctx: DecideContext) -> dict[str, Any]:
        values = sorted(m["duration"] for m in measurements.values())
        return {"median": values[len(values) // 2]}

    def finish(
        self,
        record: Record,
        measurement: dict[str, Any],
        decision: dict[str, Any],
        ctx: ItemContext,
    ) -> list[Record]:
        if measurement["duration"] < decision["median"]:
            ctx.reject(record, "below the median")
            return []
        src = ctx.input_audio(record)
        return [{**record, "audio": ctx.link(src, f"{record['id']}{src.suffix}")}]


def frame_labels(segments: Iterable[Any], n_frames: int, *, hop: float = 0.01) -> list[str]:
    """Per-frame labels (frame i covers [i*hop, (i+1)*hop)) from (label, start, end) triples."""
    labels = ["none"] * n_frames
    for label, start, end in segments:
        a, b = int(round(start / hop)), min(n_frames, int(round(end / hop)))
        labels[a:b] = [label] * (b - a)
    return labels


def read_reference_csv(path: Path) -> list[tuple[str, float, float]]:
    """inaSpeechSegmenter's reference CSV as (label, start, stop); male/female become speech."""
    rows = path.read_text().splitlines()[1:]
    out = []
    for row in rows:
        label, start, stop = row.split("\t")
        label = "speech" if label in ("male", "female") else label
        out.append((label, float(start), float(stop)))
    return out
