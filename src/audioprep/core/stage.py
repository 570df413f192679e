"""The stage kinds: map, source and corpus stages, and the contexts the runner hands them.

A stage never reads or writes manifests and never starts processes: the runner does that.
Every stage has a ``name``, a ``version`` and a ``Params`` dataclass (its one schema, see
:mod:`audioprep.core.params`). Pick the kind that says how it runs:

- :class:`MapStage`: ``process(record, ctx)`` maps one input record to zero or more records.
- :class:`SourceStage`: ``inputs()`` yields the items (from files, URLs), then ``process``.
- :class:`CorpusStage`: ``measure`` each item (in workers), ``decide`` once from every
  measurement (main process), then ``finish`` each item knowing the decision.

To drop an item or part of it call ``ctx.reject``; raise :class:`~audioprep.errors.ItemError`
for a clear per-item failure. A toy stage, runnable::

    >>> import dataclasses, tempfile
    >>> from audioprep.testing import ToyStage, make_manifest_dir, sine_file
    >>> from audioprep.run.runner import run_stage
    >>> tmp = tempfile.mkdtemp()
    >>> src = make_manifest_dir(f"{tmp}/in", [sine_file(f"{tmp}/a.wav")])
    >>> run_stage(ToyStage(ToyStage.Params(tag="x")), f"{tmp}/out", in_dir=src, jobs=1,
    ...           progress=False).items_ok
    1
"""

from __future__ import annotations

import abc
import contextlib
import dataclasses
import errno
import json
import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any, ClassVar

from audioprep.core.params import by_role, validate
from audioprep.errors import ItemError
from audioprep.manifests.fields import RecordField
from audioprep.manifests.layout import PARTIAL_DIR, TMP_DIR, ManifestDir, Output
from audioprep.manifests.records import AUDIO_DIR, Record, resolve_audio

__all__ = [
    "PARTIAL_DIR",
    "CorpusStage",
    "DecideContext",
    "FinalizeContext",
    "ItemContext",
    "ItemResult",
    "MapStage",
    "Output",
    "RecordField",
    "Resources",
    "SourceStage",
    "Stage",
    "StageCall",
    "WorkerContext",
    "kind_of",
    "link_or_copy",
]


def link_or_copy(source: Path, dest: Path) -> None:
    """Hard-link ``source`` as ``dest`` (replacing it); copy where a link cannot be made
    (another file system, a link limit, a file system without links). A symlink is followed
    to the file it names: on Linux ``os.link`` would link the symlink itself, and a relative
    link copied into OUT points outside the directory (or nowhere)."""
    source = Path(os.path.realpath(source))
    with contextlib.suppress(FileNotFoundError):
        dest.unlink()
    try:
        os.link(source, dest)
    except OSError as exc:
        if exc.errno not in (errno.EXDEV, errno.EPERM, errno.EMLINK, errno.ENOTSUP):
            raise
        shutil.copyfile(source, dest)


@dataclasses.dataclass(frozen=True)
class Resources:
    """What one worker of a stage needs (a Ray actor asks for this much)."""

    num_cpus: float = 1
    num_gpus: float = 0
    #: CPU threads each worker gives its libraries; None: cores divided by --jobs.
    #: ``AUDIOPREP_THREADS`` overrides both.
    threads: int | None = None


@dataclasses.dataclass(frozen=True)
class WorkerContext:
    """What ``setup`` knows about the worker it runs in."""

    threads: int = 1  # CPU threads this worker may use (cores divided by jobs)
    in_dir: Path | None = None
    out_dir: Path | None = None
    device: str = "cpu"  # "cpu" or "cuda" (a stage's own --device, when it has one)


class _SideFiles:
    """Writing the side files a stage declares in ``Stage.outputs``, through the directory's
    :class:`~audioprep.manifests.layout.ManifestDir` (atomic, never through a symlink)."""

    files: ManifestDir

    def folder(self, name: str) -> Path:
        """The declared folder ``name`` (``"arrays"``, ``"arrays/.parts"``), created."""
        return self.files.folder(name)

    def writing(self, name: str) -> contextlib.AbstractContextManager[Path]:
        """A temporary path to write the declared output ``name`` to; renamed over it at the
        end of the ``with`` block: ``with ctx.writing("speaker_report.png") as tmp: ...``."""
        return self.files.writing(name)

    def write_text(self, name: str, text: str) -> None:
        """Write the declared output ``name`` atomically."""
        self.files.write_text(name, text)


@dataclasses.dataclass(frozen=True)
class DecideContext(_SideFiles):
    """What a corpus stage's ``decide`` knows, and where it writes declared side files."""

    out_dir: Path
    in_dir: Path | None = None
    #: made from out_dir when not given
    files: ManifestDir = None  # type: ignore[assignment]

    def __post_init__(self) -> None:
        if self.files is None:
            object.__setattr__(self, "files", ManifestDir(self.out_dir))


@dataclasses.dataclass(frozen=True)
class FinalizeContext(DecideContext):
    """What a corpus stage's ``finalize`` knows: the end-of-run files it writes go through
    ``writing``/``write_text``/``folder`` (declared in ``Stage.outputs``)."""


class Stage(abc.ABC):  # noqa: B024 - the kinds below hold the abstract methods
    """What every stage has; subclass :class:`MapStage`, :class:`SourceStage` or
    :class:`CorpusStage` instead.

    ``check`` runs once in the main process before any file is touched, ``check_input`` then
    with the input directory, ``setup`` once in each worker (load models there), ``teardown``
    once in each worker when it ends (close what ``setup`` opened).
    """

    name: ClassVar[str] = ""
    version: ClassVar[str] = "1"
    #: What one worker needs (CPUs, GPUs); executors that place workers read it.
    resources: ClassVar[Resources] = Resources()
    #: Files and folders this stage writes into OUT_DIR beside the manifest (``arrays``,
    #: ``speaker_report.json``): written through the contexts, cleared by ``--overwrite``.
    outputs: ClassVar[tuple[Output, ...]] = ()
    #: The record fields this stage adds (name, type, help, how exports carry them): exports,
    #: the report's histograms and the docs' field tables read these.
    record_fields: ClassVar[tuple[RecordField, ...]] = ()

    @dataclasses.dataclass(frozen=True)
    class Params:
        pass

    def __init__(self, params: Any | None = None) -> None:
        self.params = params if params is not None else self.Params()
        # the declared choices and bounds hold however the Params were made (CLI, YAML, Python)
        validate(self.params, stage=self.name or None)
        #: CPU threads this worker may use; also in ``setup``'s WorkerContext.
        self.threads = 1

    @property
    def device(self) -> str | None:
        """Where this stage's model runs (its shared ``--device`` option), or None when it
        runs no model; executors read this instead of a field by name."""
        value = by_role(self.params, "device")
        return str(value) if value else None

    def check(self) -> None:  # noqa: B027 - optional hook
        """Validate parameters and required tools; raise AudioprepError/UsageError if unusable."""

    def check_input(self, in_dir: Path) -> None:  # noqa: B027 - optional hook
        """Validate parameters against the input manifest (e.g. sample rates) before any work."""

    def setup(self, ctx: WorkerContext) -> None:  # noqa: B027 - optional hook
        """Prepare a worker (load a model, open a session). Called once per worker."""

    def teardown(self) -> None:  # noqa: B027 - optional hook
        """Free what ``setup`` made (close an engine, stop a process). Called once per worker
        when it ends, by every executor; also when ``setup`` failed half-way, so it must
        tolerate a partial setup, and it may be called twice."""

    def tool_versions(self) -> dict[str, str]:
        """Versions of the external tools this stage uses, recorded in stage.json."""
        return {}

    def params_dict(self) -> dict[str, Any]:
        """The parameters as plain JSON data (tuples become lists, paths strings)."""
        return json.loads(json.dumps(dataclasses.asdict(self.params), default=str))

    @classmethod
    def report_section(cls, out_dir: Path) -> str | None:
        """HTML for ``audioprep report`` of a directory this stage wrote, or None."""
        return None


class MapStage(Stage):
    """A stage that maps each input record to zero, one or many output records."""

    @abc.abstractmethod
    def process(self, record: Record, ctx: ItemContext) -> list[Record]:
        """Map one input record to output records (``[]`` after ``ctx.reject`` drops it)."""

    def process_batch(self, records: list[Record], ctxs: list[ItemContext]) -> list[list[Record]]:
        """Map several records at once (a model's batch); by default one after the other."""
        return [self.process(r, c) for r, c in zip(records, ctxs, strict=True)]


class SourceStage(MapStage):
    """A stage that reads sources (files, URLs) instead of a manifest directory."""

    @abc.abstractmethod
    def inputs(self) -> Iterator[Record]:
        """The input items (``id`` and ``source``) built from the parameters."""


class CorpusStage(Stage):
    """A stage that decides from the whole corpus (a threshold from every score)."""

    @abc.abstractmethod
    def measure(self, record: Record, ctx: ItemContext) -> dict[str, Any]:
        """The per-item measurement (small, JSON-able), computed in a worker."""

    @abc.abstractmethod
    def decide(self, measurements: dict[str, dict[str, Any]], ctx: DecideContext) -> dict[str, Any]:
        """One decision (JSON-able) from every item's measurement, in the main process."""

    @abc.abstractmethod
    def finish(
        self,
        record: Record,
        measurement: dict[str, Any],
        decision: dict[str, Any],
        ctx: ItemContext,
    ) -> list[Record]:
        """Map one record, knowing its measurement and the decision."""

    def finalize(  # noqa: B027 - optional hook
        self,
        measurements: dict[str, dict[str, Any]],
        decision: dict[str, Any],
        ctx: FinalizeContext,
    ) -> None:
        """Write end-of-run files (shards, an index) once every item is finished, before the
        manifest; runs again on every resumed run, so it must be idempotent."""


@dataclasses.dataclass
class StageCall:
    """A stage with its directories and run options: everything one run needs.

    The CLI builds one from a command line, a chain from a config step.
    """

    stage: Stage
    out_dir: Path
    in_dir: Path | None
    run: Any  # audioprep.run.options.RunOptions

    @property
    def jobs(self) -> int:
        return int(self.run.jobs)

    @property
    def fail_fast(self) -> bool:
        return bool(self.run.fail_fast)


def kind_of(stage: Stage | type[Stage]) -> str:
    """``"source"``, ``"corpus"`` or ``"map"``: which of the kinds ``stage`` is."""
    kind = stage if isinstance(stage, type) else type(stage)
    if issubclass(kind, SourceStage):
        return "source"
    if issubclass(kind, CorpusStage):
        return "corpus"
    return "map"


@dataclasses.dataclass
class ItemResult:
    """What processing one input item produced; one line of the run's journal."""

    id: str
    status: str  # "ok" | "rejected" | "error"
    records: list[Record] = dataclasses.field(default_factory=list)
    rejected: list[Record] = dataclasses.field(default_factory=list)
    error: Record | None = None
    seconds: float = 0.0


class ItemContext(_SideFiles):
    """File access for one item: safe input paths, atomic audio outputs, hard links, rejects,
    and the stage's declared side files (``folder``, ``writing``)."""

    def __init__(
        self,
        *,
        stage_name: str,
        in_dir: Path | None,
        out_dir: Path,
        outputs: tuple[Output, ...] = (),
    ) -> None:
        self.stage_name = stage_name
        self.in_dir = in_dir
        self.out_dir = out_dir
        self.files = ManifestDir(out_dir, outputs)
        self.audio_dir = out_dir / AUDIO_DIR
        self.tmp_dir = out_dir / TMP_DIR
        self.partial_dir = out_dir / PARTIAL_DIR
        self.rejected: list[Record] = []

    def input_audio(self, record: Record) -> Path:
        """Absolute path of a record's audio in the input directory, checked to exist inside it."""
        if self.in_dir is None:
            raise ItemError("this stage has no input directory")
        path = resolve_audio(self.in_dir, record["audio"])
        if not path.is_file():
            raise ItemError(f"audio file {record['audio']!r} is missing from the input directory")
        return path

    @contextlib.contextmanager
    def output(self, filename: str) -> Iterator[Path]:
        """Yield a temporary path to write ``filename`` into; on success move it into ``audio/``.

        The rename is atomic, so ``audio/`` never holds a half-written file. Use the returned
        :meth:`relpath` of the name in the record.
        """
        self.tmp_dir.mkdir(parents=True, exist_ok=True)
        tmp = self.tmp_dir / f"{os.getpid()}-{filename}"
        try:
            yield tmp
            if not tmp.is_file():
                raise ItemError(f"no output was written for {filename}")
            os.replace(tmp, self.audio_dir / filename)
        finally:
            with contextlib.suppress(FileNotFoundError):
                tmp.unlink()

    def link(self, source: Path, filename: str) -> str:
        """Put ``source`` into ``audio/filename`` unchanged: hard-linked, copied across devices."""
        dest = self.audio_dir / filename
        self.tmp_dir.mkdir(parents=True, exist_ok=True)
        tmp = self.tmp_dir / f"{os.getpid()}-{filename}"
        link_or_copy(source, tmp)
        os.replace(tmp, dest)
        return self.relpath(filename)

    def adopt(self, path: Path, filename: str) -> str:
        """Move a finished file from inside OUT_DIR (a download) into ``audio/filename``."""
        os.replace(path, self.audio_dir / filename)
        return self.relpath(filename)

    @staticmethod
    def relpath(filename: str) -> str:
        """The ``audio`` field value for a file written with :meth:`output` or :meth:`link`."""
        return f"{AUDIO_DIR}/{filename}"

    def reject(self, record: Record, reason: str, **details: Any) -> None:
        """Drop ``record`` (an input record or a part of one) with a reason, into rejected.jsonl."""
        self.rejected.append(
            {
                "id": record.get("id"),
                "reason": reason,
                "stage": self.stage_name,
                **details,
                "record": record,
            }
        )
