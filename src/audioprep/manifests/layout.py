"""The manifest directory's layout: its file names, the run identity, the lock, clearing.

One module owns what a stage's output directory holds, so the runner, chains and the report
ask here instead of spelling file names themselves::

    OUT_DIR/
      manifest.jsonl    one record per item (written at the end, in input order)
      audio/            the items' audio (and any other file a record names)
      rejected.jsonl    items and parts dropped on purpose, with the reason
      errors.jsonl      items that failed, with the reason
      stage.json        written last: parameters, input, counts, timings, tool versions
      decision.json     corpus stages: the corpus-wide decision
      .run.json         the identity of the run in progress (stage, version, params, input)
      .journal.jsonl    one line per finished item: what makes resuming exact
      .measure.jsonl    corpus stages: the first pass's journal
      .lock             held (flock) while a run writes here
      .tmp/ .partial/   files being written; downloads to resume
      .ray-items.jsonl  the Ray executor's log: the node of each item
      .ray-probe        the Ray executor's check that workers see this folder
      ...               what the stage declares in ``Stage.outputs`` (``arrays/``,
                        ``fingerprints/``, ``speaker_report.json``, ...)

:class:`ManifestDir` is the one owner of these names: ``--overwrite`` clears all of them (a
symlink among them is removed, never followed), stages and executors write their side files
through it (atomically, never through a link), and a declared folder keeps only the files the
run names at its end.

>>> old = {"stage": "trim", "params": {"head": 1}}
>>> identity_changes(old, {"stage": "trim", "params": {"head": 2}})
['head: 1 -> 2']
"""

from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import json
import os
import shutil
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import IO, Any

from audioprep.errors import AudioprepError

MANIFEST = "manifest.jsonl"
STAGE_FILE = "stage.json"
ERRORS = "errors.jsonl"
REJECTED = "rejected.jsonl"
AUDIO_DIR = "audio"
REPORT_FILE = "report.html"
REPORT_JSON = "report.json"
RUN_FILE = ".run.json"
JOURNAL = ".journal.jsonl"
MEASURE_JOURNAL = ".measure.jsonl"
DECISION_FILE = "decision.json"
LOCK_FILE = ".lock"
TMP_DIR = ".tmp"
PARTIAL_DIR = ".partial"
#: Files a run writes, removed by :func:`clear`.
RUN_FILES = (
    STAGE_FILE,
    MANIFEST,
    ERRORS,
    REJECTED,
    JOURNAL,
    RUN_FILE,
    MEASURE_JOURNAL,
    DECISION_FILE,
)
RUN_DIRS = (AUDIO_DIR, TMP_DIR, PARTIAL_DIR)
#: Logs executors write beside a run (cleared with it).
RAY_ITEM_LOG = ".ray-items.jsonl"
RAY_PROBE = ".ray-probe"
EXECUTOR_FILES = (RAY_ITEM_LOG, RAY_PROBE)

__all__ = [
    "AUDIO_DIR",
    "DECISION_FILE",
    "ERRORS",
    "EXECUTOR_FILES",
    "JOURNAL",
    "LOCK_FILE",
    "MANIFEST",
    "MEASURE_JOURNAL",
    "PARTIAL_DIR",
    "RAY_ITEM_LOG",
    "RAY_PROBE",
    "REJECTED",
    "REPORT_FILE",
    "REPORT_JSON",
    "RUN_FILE",
    "STAGE_FILE",
    "TMP_DIR",
    "Lock",
    "ManifestDir",
    "Output",
    "clear",
    "identity",
    "identity_changes",
    "is_manifest_dir",
    "read_json",
]


def identity(stage: Any, in_dir: Path | None) -> dict[str, Any]:
    """What makes two runs the same run: stage, version, parameters and input directory."""
    return {
        "stage": stage.name,
        "version": stage.version,
        "params": stage.params_dict(),
        "input": str(in_dir) if in_dir else None,
    }


def identity_changes(old: dict[str, Any], new: dict[str, Any]) -> list[str]:
    """What differs between two run identities, one ``key: old -> new`` per difference
    (each changed parameter by its own name)."""
    out = [
        f"{k}: {old.get(k)!r} -> {new.get(k)!r}"
        for k in ("stage", "version", "input")
        if old.get(k) != new.get(k)
    ]
    before, after = old.get("params") or {}, new.get("params") or {}
    out += [
        f"{k}: {before.get(k)!r} -> {after.get(k)!r}"
        for k in {**before, **after}
        if before.get(k) != after.get(k)
    ]
    return out


def read_json(path: Path) -> dict[str, Any] | None:
    """A JSON file's content, or None when it is missing or unreadable."""
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def stage_info(directory: Path) -> dict[str, Any] | None:
    """The stage.json of a finished directory, or None."""
    return read_json(Path(directory) / STAGE_FILE)


def run_identity(directory: Path) -> dict[str, Any] | None:
    """The identity of the run started in ``directory`` (finished or not), or None."""
    return read_json(Path(directory) / RUN_FILE)


def is_manifest_dir(path: Path) -> bool:
    """Whether ``path`` holds (the start of) an audioprep run."""
    return any((path / name).exists() for name in (RUN_FILE, STAGE_FILE, JOURNAL, MANIFEST))


def clear(out_dir: Path, outputs: Iterable[Output] = ()) -> None:
    """Remove everything a previous run wrote (``--overwrite``); see :meth:`ManifestDir.clear`."""
    ManifestDir(out_dir, outputs).clear()


def _remove(path: Path) -> None:
    """Remove a file, a folder tree or a symlink (the link itself, never its target)."""
    if path.is_symlink() or (path.exists() and not path.is_dir()):
        with contextlib.suppress(FileNotFoundError):
            path.unlink()
    elif path.is_dir():
        shutil.rmtree(path, ignore_errors=True)


@dataclasses.dataclass(frozen=True)
class Output:
    """A file or folder a stage writes into OUT_DIR beside the manifest (``Stage.outputs``).

    ``folder``: a folder of files (``arrays``); ``pruned``: at the end of a complete run the
    folder keeps only the files that a record, a measurement, the decision or the stage's
    ``finalize`` names (``arrays/a.npy``), so no stale file of an earlier run survives.

    >>> Output("arrays", "one array per item", folder=True, pruned=True).name
    'arrays'
    """

    name: str
    help: str
    folder: bool = False
    pruned: bool = False
    #: a cache keyed by what made each entry (an input's identity and a model's version): kept
    #: by ``--overwrite`` so a re-run with other options reuses it; a link there is still removed
    cache: bool = False


class ManifestDir:
    """Every name in one output directory: the run's files, executors' logs and the side
    files its stage declares.

    >>> import tempfile
    >>> d = ManifestDir(Path(tempfile.mkdtemp()), [Output("report.txt", "a report")])
    >>> d.write_text("report.txt", "hello")
    >>> (d.path / "report.txt").read_text()
    'hello'
    >>> d.clear(); (d.path / "report.txt").exists()
    False
    """

    def __init__(self, path: str | os.PathLike[str], outputs: Iterable[Output] = ()) -> None:
        self.path = Path(path)
        self.outputs = {o.name: o for o in outputs}
        #: Names written through :meth:`writing` in this process (kept by :meth:`prune`).
        self.written: set[str] = set()

    # -- names ------------------------------------------------------------------------------
    def names(self) -> list[str]:
        """Every top-level name this directory may hold."""
        return [*RUN_FILES, *RUN_DIRS, *EXECUTOR_FILES, LOCK_FILE, *self.outputs]

    def _declared(self, name: str) -> Output:
        top = name.split("/", 1)[0]
        out = self.outputs.get(top)
        if out is None or (name != top and not out.folder) or ".." in name.split("/"):
            known = ", ".join(self.outputs) or "none"
            raise ValueError(f"{name!r} is not an output this stage declares (declared: {known})")
        return out

    # -- clearing ---------------------------------------------------------------------------
    def clear(self) -> None:
        """Remove everything a previous run wrote (``--overwrite``): the run's files and
        folders, executors' logs and the declared outputs but caches; links are removed, not
        followed."""
        kept = {name for name, out in self.outputs.items() if out.cache}
        for name in (*RUN_FILES, *EXECUTOR_FILES, *RUN_DIRS, *self.outputs):
            if name not in kept or (self.path / name).is_symlink():
                _remove(self.path / name)

    def unlink_links(self) -> None:
        """Remove declared outputs that are symlinks (written in their place, never through)."""
        for name in self.outputs:
            if (self.path / name).is_symlink():
                _remove(self.path / name)

    def prune(self, referenced: set[str]) -> None:
        """In each pruned folder, remove the files neither ``referenced`` (``arrays/a.npy``)
        nor written through :meth:`writing`; then empty sub-folders."""
        keep = referenced | self.written
        for out in self.outputs.values():
            root = self.path / out.name
            if not (out.folder and out.pruned) or root.is_symlink() or not root.is_dir():
                continue
            for folder, dirs, files in os.walk(root, topdown=False):
                for fname in files:
                    rel = Path(folder, fname).relative_to(self.path).as_posix()
                    if rel not in keep:
                        with contextlib.suppress(FileNotFoundError):
                            os.unlink(os.path.join(folder, fname))
                for dname in dirs:
                    with contextlib.suppress(OSError):
                        os.rmdir(os.path.join(folder, dname))  # only when empty

    # -- writing ----------------------------------------------------------------------------
    def folder(self, name: str) -> Path:
        """The declared folder ``name`` (or a folder inside it), created; a symlink there is
        replaced by a real folder."""
        out = self._declared(name)
        if not out.folder:
            raise ValueError(f"{name!r} is a file, not a folder")
        path = self.path
        for part in name.split("/"):
            path = path / part
            if path.is_symlink():
                with contextlib.suppress(FileNotFoundError):
                    path.unlink()
            path.mkdir(exist_ok=True)
        return path

    @contextlib.contextmanager
    def writing(self, name: str) -> Iterator[Path]:
        """Yield a temporary path (same suffix) to write the declared output ``name`` into;
        on success it is renamed over ``name`` (replacing a symlink, never writing through it)."""
        self._declared(name)
        parent = name.rsplit("/", 1)[0] if "/" in name else None
        dest_dir = self.folder(parent) if parent else self.path
        dest = dest_dir / name.rsplit("/", 1)[-1]
        tmp_dir = self.path / TMP_DIR
        tmp_dir.mkdir(exist_ok=True)
        tmp = tmp_dir / f"{os.getpid()}-{name.replace('/', '--')}"
        try:
            yield tmp
            os.replace(tmp, dest)
            self.written.add(name)
        finally:
            with contextlib.suppress(FileNotFoundError):
                tmp.unlink()

    def write_text(self, name: str, text: str) -> None:
        """Write the declared output ``name`` atomically."""
        with self.writing(name) as tmp:
            tmp.write_text(text, encoding="utf-8")

    def write_log(self, name: str, text: str) -> None:
        """Write an executor's file (``.ray-probe``) atomically."""
        if name not in EXECUTOR_FILES:
            raise ValueError(f"{name!r} is not an executor's file")
        tmp = self.path / f".{name}.{os.getpid()}.tmp"
        tmp.write_text(text, encoding="utf-8")
        os.replace(tmp, self.path / name)

    def open_log(self, name: str) -> IO[str]:
        """An executor's log (``.ray-items.jsonl``) opened for appending, never through a link."""
        if name not in EXECUTOR_FILES:
            raise ValueError(f"{name!r} is not an executor's file")
        flags = os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC | os.O_NOFOLLOW
        try:
            fd = os.open(self.path / name, flags, 0o644)
        except OSError as exc:
            if not (self.path / name).is_symlink():
                raise
            raise AudioprepError(
                f"{self.path / name} is a symlink; remove it (or run with --overwrite)."
            ) from exc
        return os.fdopen(fd, "a", encoding="utf-8")


class Lock:
    """An exclusive, non-blocking flock on OUT_DIR/.lock (released even by kill -9)."""

    def __init__(self, directory: Path) -> None:
        path = directory / LOCK_FILE
        self.fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        try:
            fcntl.flock(self.fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(self.fd)
            raise AudioprepError(
                f"another audioprep run is writing to {directory} right now; wait for it to "
                "finish (or stop it), then run this again."
            ) from None
        os.ftruncate(self.fd, 0)
        os.write(self.fd, f"{os.getpid()}\n".encode())

    def release(self) -> None:
        fcntl.flock(self.fd, fcntl.LOCK_UN)
        os.close(self.fd)
