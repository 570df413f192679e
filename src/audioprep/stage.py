"""The one shape every stage has: name, version, typed parameters, setup once, map one record.

A stage never reads or writes manifests and never starts processes: the runner does that.
It receives one input record and an :class:`ItemContext` and returns zero, one or many
output records (a list of dicts). To drop an item or part of it, call ``ctx.reject``.
Raise :class:`~audioprep.errors.ItemError` for a clear per-item failure.
"""

from __future__ import annotations

import contextlib
import dataclasses
import errno
import json
import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any, ClassVar

from audioprep.errors import ItemError
from audioprep.manifest import AUDIO_DIR, Record, resolve_audio

#: Downloads in progress (source stages): kept across runs so they resume, removed once a run
#: ends with no failed item.
PARTIAL_DIR = ".partial"


def link_or_copy(source: Path, dest: Path) -> None:
    """Hard-link ``source`` as ``dest`` (replacing it); copy where a link cannot be made
    (another file system, a link limit, a file system without links)."""
    with contextlib.suppress(FileNotFoundError):
        dest.unlink()
    try:
        os.link(source, dest)
    except OSError as exc:
        if exc.errno not in (errno.EXDEV, errno.EPERM, errno.EMLINK, errno.ENOTSUP):
            raise
        shutil.copyfile(source, dest)


class Stage:
    """Base class of all stages.

    Subclasses set ``name``, ``version`` and ``Params`` (a dataclass), and implement
    :meth:`process`. ``check`` runs once in the main process before any file is touched,
    ``setup`` once in each worker (load models there).
    """

    name: ClassVar[str] = ""
    version: ClassVar[str] = "1"
    #: Stages that decide from the whole corpus (a threshold from every score, the voice most
    #: items share) set this: the runner first ``measure``s every item in the workers, then
    #: calls ``decide`` once with all measurements, then ``finish``es each item in order.
    needs_corpus: ClassVar[bool] = False
    #: True for stages that read sources (files, URLs) rather than a manifest directory.
    is_source: ClassVar[bool] = False

    @dataclasses.dataclass(frozen=True)
    class Params:
        pass

    def __init__(self, params: Any | None = None) -> None:
        self.params = params if params is not None else self.Params()
        #: CPU threads this worker may use (cores divided by jobs); set by the executor.
        self.threads = 1

    def check(self) -> None:
        """Validate parameters and required tools; raise AudioprepError/UsageError if unusable."""

    def check_input(self, in_dir: Path) -> None:
        """Validate parameters against the input manifest (e.g. sample rates) before any work."""

    def setup(self) -> None:
        """Prepare a worker (load a model, open a session). Called once per worker."""

    def inputs(self) -> Iterator[Record]:
        """Source stages only: the input items (``id`` and ``source``) built from parameters."""
        raise NotImplementedError

    def process(self, record: Record, ctx: ItemContext) -> list[Record]:
        """Map one input record to output records."""
        raise NotImplementedError

    def measure(self, record: Record, ctx: ItemContext) -> dict[str, Any]:
        """Corpus stages: the per-item measurement (small, JSON-able), computed in a worker."""
        raise NotImplementedError

    def decide(self, measurements: dict[str, dict[str, Any]]) -> dict[str, Any]:
        """Corpus stages: one decision from every item's measurement (main process)."""
        raise NotImplementedError

    def finish(
        self,
        record: Record,
        measurement: dict[str, Any],
        decision: dict[str, Any],
        ctx: ItemContext,
    ) -> list[Record]:
        """Corpus stages: map one record, knowing its measurement and the decision."""
        raise NotImplementedError

    def tool_versions(self) -> dict[str, str]:
        """Versions of the external tools this stage uses, recorded in stage.json."""
        return {}

    def params_dict(self) -> dict[str, Any]:
        """The parameters as plain JSON data (tuples become lists, paths strings)."""
        return json.loads(json.dumps(dataclasses.asdict(self.params), default=str))


@dataclasses.dataclass
class ItemResult:
    """What processing one input item produced; one line of the run's journal."""

    id: str
    status: str  # "ok" | "rejected" | "error"
    records: list[Record] = dataclasses.field(default_factory=list)
    rejected: list[Record] = dataclasses.field(default_factory=list)
    error: Record | None = None
    seconds: float = 0.0


class ItemContext:
    """File access for one item: safe input paths, atomic audio outputs, hard links, rejects."""

    def __init__(self, *, stage_name: str, in_dir: Path | None, out_dir: Path) -> None:
        self.stage_name = stage_name
        self.in_dir = in_dir
        self.out_dir = out_dir
        self.audio_dir = out_dir / AUDIO_DIR
        self.tmp_dir = out_dir / ".tmp"
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
