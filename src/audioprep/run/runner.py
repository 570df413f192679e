"""The one runner every stage goes through.

It streams the input manifest, skips items a previous run finished, sends the rest to an
executor, journals each result as it comes back, and at the end writes ``manifest.jsonl``,
``rejected.jsonl`` and ``errors.jsonl`` in input order, then ``stage.json`` last.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import json
import os
import platform
import shutil
import time
import traceback
from collections.abc import Iterator
from pathlib import Path
from typing import Any, TextIO

from audioprep import __version__
from audioprep.core.stage import (
    DecideContext,
    FinalizeContext,
    ItemContext,
    ItemResult,
    Stage,
    kind_of,
)
from audioprep.errors import AudioprepError, ItemError, UsageError, from_os_error
from audioprep.manifests.guards import check_output_dir
from audioprep.manifests.layout import (
    AUDIO_DIR,
    DECISION_FILE,
    ERRORS,
    JOURNAL,
    MANIFEST,
    MEASURE_JOURNAL,
    PARTIAL_DIR,
    REJECTED,
    RUN_FILE,
    STAGE_FILE,
    TMP_DIR,
    Lock,
    ManifestDir,
    identity,
    identity_changes,
    is_manifest_dir,
)
from audioprep.manifests.records import (
    Record,
    atomic_write_text,
    dumps,
    iter_raw,
    manifest_path,
    resolve_audio,
    validate_record,
)
from audioprep.run.executors.base import Executor, WorkerSpec, error_result, local_executor
from audioprep.run.journal import Journal, input_stamp
from audioprep.run.progress import Progress

EXIT_OK = 0
EXIT_ITEMS_FAILED = 1


def default_jobs() -> int:
    """The number of cores this process may use."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        return os.cpu_count() or 1


def worker_threads(stage: Stage, jobs: int) -> int:
    """CPU threads each worker gives its libraries (torch, TensorFlow, BLAS):
    ``AUDIOPREP_THREADS`` when set, else the stage's ``resources.threads``, else cores / jobs."""
    env = os.environ.get("AUDIOPREP_THREADS")
    if env:
        try:
            value = int(env)
        except ValueError:
            value = 0
        if value < 1:
            raise UsageError(f"AUDIOPREP_THREADS must be a whole number, 1 or more, not {env!r}")
        return value
    declared = getattr(stage.resources, "threads", None)
    return int(declared) if declared else max(1, default_jobs() // max(1, jobs))


#: Items whose seconds a RunSummary keeps one by one (memory stays bounded).
ITEM_TIMES_KEPT = 10_000


@dataclasses.dataclass
class RunSummary:
    """Counts and timings of one run; ``exit_code`` is 0 when no item failed, 1 otherwise."""

    stage: str
    out_dir: Path
    items_in: int = 0
    items_ok: int = 0
    items_rejected: int = 0
    items_failed: int = 0
    items_resumed: int = 0
    records_out: int = 0
    records_rejected: int = 0
    seconds_in: float = 0.0
    seconds_out: float = 0.0
    wall_time_s: float = 0.0
    #: Seconds the stage's per-item code ran, summed over workers (start-up not included).
    item_seconds: float = 0.0
    #: Those seconds item by item, for the first ITEM_TIMES_KEPT items (``--estimate``).
    item_times: list[float] = dataclasses.field(default_factory=list, repr=False)
    jobs: int = 1

    @property
    def exit_code(self) -> int:
        return EXIT_ITEMS_FAILED if self.items_failed else EXIT_OK

    def line(self) -> str:
        """One line for the terminal."""
        parts = [f"{self.items_ok} ok"]
        if self.items_rejected:
            parts.append(f"{self.items_rejected} rejected")
        if self.items_failed:
            parts.append(f"{self.items_failed} failed (see {self.out_dir / ERRORS})")
        if self.items_resumed:
            parts.append(f"{self.items_resumed} already done")
        speed = ""
        if self.wall_time_s > 0 and self.seconds_in > 0:
            speed = f", {self.seconds_in / self.wall_time_s:.0f}x real time"
        return (
            f"{self.stage}: {', '.join(parts)} of {self.items_in} items -> {self.records_out} "
            f"records ({self.seconds_out / 3600:.3f} h) in {self.wall_time_s:.1f} s{speed}: "
            f"{self.out_dir}"
        )


def _error_line(stage: str, item_id: str, reason: str, kind: str, record: Any) -> Record:
    return {"id": item_id, "stage": stage, "reason": reason, "type": kind, "record": record}


class Runner:
    """Runs one stage from IN_DIR (or the stage's own sources) into OUT_DIR.

    >>> from audioprep.stages.convert import ConvertStage  # doctest: +SKIP
    >>> stage = ConvertStage(ConvertStage.Params(sample_rate=16000))  # doctest: +SKIP
    >>> Runner(stage, "wav/", in_dir="raw/").run()  # doctest: +SKIP
    """

    def __init__(
        self,
        stage: Stage,
        out_dir: str | os.PathLike[str],
        *,
        in_dir: str | os.PathLike[str] | None = None,
        jobs: int | None = None,
        fail_fast: bool = False,
        overwrite: bool = False,
        progress: bool | None = None,
        executor: Executor | None = None,
        batch_size: int = 1,
    ) -> None:
        self.stage = stage
        self.out_dir = Path(out_dir).absolute()
        self.in_dir = Path(in_dir).resolve() if in_dir is not None else None
        self.jobs = jobs if jobs and jobs > 0 else default_jobs()
        self.fail_fast = fail_fast
        self.overwrite = overwrite
        self.progress = progress
        self.executor = executor or local_executor(self.jobs, batch_size)
        self.kind = kind_of(stage)
        source = self.kind == "source"
        if source == (self.in_dir is not None):
            raise UsageError(f"stage {stage.name} {'takes no' if source else 'needs an'} IN_DIR")
        #: every name in OUT_DIR, the stage's declared outputs included
        self.files = ManifestDir(self.out_dir, stage.outputs)
        #: side files (``arrays/a.npy``) that records, measurements or the decision name
        self._referenced: set[str] = set()
        self._prefixes = tuple(f"{o.name}/" for o in stage.outputs if o.folder and o.pruned)

    # -- set-up ---------------------------------------------------------------------------
    def _identity(self) -> dict[str, Any]:
        return identity(self.stage, self.in_dir)

    def _prepare_out_dir(self) -> None:
        out = self.out_dir
        if self.in_dir is not None:
            manifest_path(self.in_dir)
        source_paths = getattr(self.stage, "source_paths", None)  # what a source stage reads
        check_output_dir(
            out,
            in_dirs=[self.in_dir] if self.in_dir is not None else [],
            trees=source_paths() if source_paths else [],
            clearing=self.overwrite,
        )
        if out.exists() and not out.is_dir():
            raise UsageError(f"OUT_DIR {out} exists and is not a directory.")
        if out.is_dir() and any(out.iterdir()) and not is_manifest_dir(out):
            raise UsageError(
                f"OUT_DIR {out} exists, is not empty and is not an audioprep directory; "
                "choose a new OUT_DIR."
            )
        out.mkdir(parents=True, exist_ok=True)

    def _check_identity(self) -> None:
        run_file = self.out_dir / RUN_FILE
        current = self._identity()
        if self.overwrite:
            self.files.clear()
        elif run_file.exists():
            previous = json.loads(run_file.read_text(encoding="utf-8"))
            if previous != current:
                changed = identity_changes(previous, current)
                raise UsageError(
                    f"{self.out_dir} holds a run with other settings ({'; '.join(changed)}); "
                    "pass --overwrite to replace it, or choose another OUT_DIR."
                )
        atomic_write_text(run_file, json.dumps(current, indent=2) + "\n")
        # The completion markers of an earlier run no longer hold while this one runs.
        for name in (STAGE_FILE, MANIFEST):
            with contextlib.suppress(FileNotFoundError):
                (self.out_dir / name).unlink()
        shutil.rmtree(self.out_dir / TMP_DIR, ignore_errors=True)
        (self.out_dir / AUDIO_DIR).mkdir(exist_ok=True)
        self.files.unlink_links()  # a declared output that is a link is replaced, never followed

    # -- inputs ---------------------------------------------------------------------------
    def _raw_inputs(self) -> Iterator[tuple[int, Record | None, str]]:
        if self.in_dir is None:
            for n, record in enumerate(self.stage.inputs(), start=1):  # type: ignore[attr-defined]
                yield n, record, ""
        else:
            yield from iter_raw(self.in_dir / MANIFEST)

    def _count_inputs(self) -> int | None:
        if self.in_dir is None:
            return None
        with open(self.in_dir / MANIFEST, "rb") as fh:
            return sum(1 for line in fh if line.strip())

    # -- the run --------------------------------------------------------------------------
    def run(self) -> RunSummary:
        """Run the stage; return the summary. Raises AudioprepError for fatal problems."""
        started_at = dt.datetime.now(dt.timezone.utc)
        t0 = time.perf_counter()
        self.stage.check()
        connect = getattr(self.executor, "check", None)
        if connect is not None:  # e.g. Ray: installed, and a cluster answers (before OUT_DIR)
            connect()
        if self.in_dir is not None:
            manifest_path(self.in_dir)
            self.stage.check_input(self.in_dir)
        try:  # a full disk or a read-only folder: one sentence, exit 3
            self._prepare_out_dir()
            lock = Lock(self.out_dir)
        except OSError as exc:
            raise from_os_error(exc, self.out_dir) from None
        try:
            self._check_identity()
            summary = self._run_locked()
            summary.wall_time_s = time.perf_counter() - t0
            self._write_stage_json(summary, started_at)
            return summary
        except OSError as exc:
            raise from_os_error(exc, self.out_dir) from None
        finally:
            lock.release()

    def _run_locked(self) -> RunSummary:
        stage = self.stage
        summary = RunSummary(stage=stage.name, out_dir=self.out_dir, jobs=self.jobs)
        journal = Journal(self.out_dir / JOURNAL)
        stamp = input_stamp(self.in_dir)  # a journal of another input is started over
        journal.open(stamp)
        order: list[str] = []
        invalid: list[Record] = []
        seen: set[str] = set()
        progress = Progress(stage.name, self._count_inputs(), enabled=self.progress)

        def pending() -> Iterator[Record]:
            for lineno, record, problem in self._raw_inputs():
                if record is None:
                    invalid.append(
                        _error_line(stage.name, f"line-{lineno}", problem, "BadLine", None)
                    )
                    progress.advance()
                    continue
                try:
                    if self.in_dir is not None:
                        validate_record(record)
                        resolve_audio(self.in_dir, record["audio"])
                    if record["id"] in seen:
                        raise ItemError(
                            f"duplicate id {record['id']!r} in the input (line {lineno})"
                        )
                except ItemError as exc:
                    item_id = str(record.get("id", f"line-{lineno}"))
                    invalid.append(
                        _error_line(stage.name, item_id, str(exc), "InvalidRecord", record)
                    )
                    progress.advance()
                    continue
                seen.add(record["id"])
                order.append(record["id"])
                summary.seconds_in += float(record.get("duration") or 0.0)
                if journal.status(record["id"]) in ("ok", "rejected"):
                    summary.items_resumed += 1
                    progress.advance()
                    continue
                yield record

        threads = worker_threads(stage, self.jobs)
        corpus = self.kind == "corpus"
        mode = "measure" if corpus else "process"
        spec = WorkerSpec.for_stage(
            stage, in_dir=self.in_dir, out_dir=self.out_dir, threads=threads, mode=mode
        )
        if corpus:
            measured = Journal(self.out_dir / MEASURE_JOURNAL)
            measured.open(stamp)
            todo = (r for r in pending() if measured.status(r["id"]) not in ("ok", "rejected"))
            results = self.executor.map_unordered(spec, todo)
        else:
            results = self.executor.map_unordered(spec, pending())
        fatal: str | None = None
        aborted = False
        target = measured if corpus else journal
        try:
            for result in results:
                if result.error and result.error.get("fatal"):
                    fatal = result.error["reason"]
                    break
                summary.item_seconds += result.seconds
                if len(summary.item_times) < ITEM_TIMES_KEPT:
                    summary.item_times.append(result.seconds)
                result = target.append(result)  # an unstorable result becomes an error
                progress.advance()
                if result.status == "error" and self.fail_fast:
                    aborted = True
                    break
        finally:
            results.close()  # type: ignore[attr-defined]
            progress.close()
        if fatal:
            journal.close()
            raise AudioprepError(fatal)
        if corpus and not aborted:
            self._finish_corpus(measured, journal, order)
        if corpus:
            measured.close()
        self._finalize(journal, order, invalid, summary, complete=not aborted)
        journal.close()
        if aborted:
            raise _FailFast(summary)
        return summary

    def _valid_records(self, order: list[str]) -> Iterator[tuple[str, Record]]:
        """The input records the first pass accepted, streamed again in input order."""
        valid, done = set(order), set()
        for _, record, _ in self._raw_inputs():
            if record is not None and record.get("id") in valid and record["id"] not in done:
                done.add(record["id"])
                yield record["id"], record

    def _finish_corpus(self, measured: Journal, journal: Journal, order: list[str]) -> None:
        """Second pass of a corpus stage: decide from every measurement, then finish each item.

        It is cheap (no model runs here), so it is redone whole on every run: the journal of
        the first pass is what makes a killed run resume.
        """
        stage = self.stage
        entries = {item_id: measured.read(item_id) for item_id in order}
        measurements = {
            item_id: e["records"][0] for item_id, e in entries.items() if e and e["status"] == "ok"
        }
        decision = stage.decide(  # type: ignore[attr-defined]
            measurements,
            DecideContext(out_dir=self.out_dir, in_dir=self.in_dir, files=self.files),
        )
        atomic_write_text(self.out_dir / DECISION_FILE, json.dumps(decision, indent=2) + "\n")
        self._reference(measurements)
        self._reference(decision)
        journal.open_fresh()
        for item_id, record in self._valid_records(order):
            entry = entries[item_id]
            if entry is None:
                continue
            if entry["status"] != "ok":
                journal.append(ItemResult(**entry))
                continue
            ctx = ItemContext(
                stage_name=stage.name,
                in_dir=self.in_dir,
                out_dir=self.out_dir,
                outputs=stage.outputs,
            )
            try:
                outs = stage.finish(record, measurements[item_id], decision, ctx)  # type: ignore[attr-defined]
            except ItemError as exc:
                journal.append(error_result(record, str(exc), "ItemError"))
                continue
            except AudioprepError:
                raise
            except Exception as exc:  # noqa: BLE001 - one record's failure, as in a worker
                where = traceback.extract_tb(exc.__traceback__)[-1]
                reason = (
                    f"{type(exc).__name__}: {exc} (at {Path(where.filename).name}:{where.lineno})"
                )
                journal.append(error_result(record, reason, type(exc).__name__))
                continue
            if not outs and not ctx.rejected:
                ctx.reject(record, f"{stage.name} produced no output for this item")
            journal.append(
                ItemResult(
                    id=item_id,
                    status="ok" if outs else "rejected",
                    records=outs,
                    rejected=ctx.rejected,
                )
            )
        stage.finalize(  # type: ignore[attr-defined]
            measurements,
            decision,
            FinalizeContext(out_dir=self.out_dir, in_dir=self.in_dir, files=self.files),
        )

    def _reference(self, value: Any) -> None:
        """Note the declared side files (``arrays/a.npy``) that ``value`` names, at any depth;
        at the end of a complete run the pruned folders keep only those."""
        if not self._prefixes:
            return
        if isinstance(value, str):
            if value.startswith(self._prefixes):
                self._referenced.add(value)
        elif isinstance(value, dict):
            for v in value.values():
                self._reference(v)
        elif isinstance(value, (list, tuple)):
            for v in value:
                self._reference(v)

    # -- outputs --------------------------------------------------------------------------
    def _finalize(
        self,
        journal: Journal,
        order: list[str],
        invalid: list[Record],
        summary: RunSummary,
        *,
        complete: bool,
    ) -> None:
        out = self.out_dir
        name = self.stage.name
        summary.items_in = len(order) + len(invalid)
        source_stage = self.in_dir is None
        referenced: set[str] = set()
        out_ids: set[str] = set()
        with contextlib.ExitStack() as stack:
            files: dict[str, TextIO] = {
                fname: stack.enter_context(open(out / f".{fname}.tmp", "w", encoding="utf-8"))
                for fname in (MANIFEST, REJECTED, ERRORS)
            }
            for item_id in order:
                entry = journal.read(item_id)
                if entry is None:
                    continue
                status = entry["status"]
                if status == "ok":
                    clash = [r["id"] for r in entry["records"] if r["id"] in out_ids]
                    if clash:
                        entry["error"] = {
                            "reason": f"output id {clash[0]!r} is produced by another item too",
                            "type": "DuplicateOutputId",
                            "record": None,
                        }
                        status = "error"
                if status == "error":
                    err = entry["error"] or {}
                    files[ERRORS].write(
                        dumps(
                            _error_line(
                                name,
                                item_id,
                                err.get("reason", "unknown error"),
                                err.get("type", "Error"),
                                err.get("record"),
                            )
                        )
                        + "\n"
                    )
                    summary.items_failed += 1
                    continue
                for record in entry["records"]:
                    out_ids.add(record["id"])
                    referenced.update(  # "audio" and any other file of the item (a stem)
                        v
                        for v in record.values()
                        if isinstance(v, str) and v.startswith(f"{AUDIO_DIR}/")
                    )
                    self._reference(record)
                    files[MANIFEST].write(dumps(record) + "\n")
                    summary.records_out += 1
                    summary.seconds_out += float(record.get("duration") or 0.0)
                    if source_stage:  # a source stage's input is what it found
                        summary.seconds_in += float(record.get("duration") or 0.0)
                for rejected in entry["rejected"]:
                    files[REJECTED].write(dumps(rejected) + "\n")
                    summary.records_rejected += 1
                if status == "ok":
                    summary.items_ok += 1
                else:
                    summary.items_rejected += 1
            for line in invalid:
                files[ERRORS].write(dumps(line) + "\n")
                summary.items_failed += 1
            for fh in files.values():
                fh.flush()
                os.fsync(fh.fileno())
        os.replace(out / f".{ERRORS}.tmp", out / ERRORS)
        if not complete:
            for fname in (MANIFEST, REJECTED):
                (out / f".{fname}.tmp").unlink()
            return
        os.replace(out / f".{REJECTED}.tmp", out / REJECTED)
        os.replace(out / f".{MANIFEST}.tmp", out / MANIFEST)
        audio_dir = out / AUDIO_DIR
        for path in audio_dir.iterdir():  # orphans of items killed mid-way or since re-done
            if f"{AUDIO_DIR}/{path.name}" not in referenced and path.is_file():
                path.unlink()
        self.files.prune(self._referenced)  # the same for the stage's declared folders
        shutil.rmtree(out / TMP_DIR, ignore_errors=True)
        if not summary.items_failed:  # nothing left to resume
            shutil.rmtree(out / PARTIAL_DIR, ignore_errors=True)

    def _write_stage_json(self, summary: RunSummary, started_at: dt.datetime) -> None:
        info = {
            "stage": self.stage.name,
            "version": self.stage.version,
            "params": self.stage.params_dict(),
            "input": str(self.in_dir) if self.in_dir else None,
            "output": str(self.out_dir),
            "items_in": summary.items_in,
            "items_ok": summary.items_ok,
            "items_rejected": summary.items_rejected,
            "items_failed": summary.items_failed,
            "items_resumed": summary.items_resumed,
            "records_out": summary.records_out,
            "records_rejected": summary.records_rejected,
            "hours_in": round(summary.seconds_in / 3600, 6),
            "hours_out": round(summary.seconds_out / 3600, 6),
            "wall_time_s": round(summary.wall_time_s, 3),
            "started_at": started_at.isoformat(timespec="seconds"),
            "finished_at": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
            "jobs": self.jobs,
            "executor": type(self.executor).__name__,
            **({"executor_info": self.executor.info()} if hasattr(self.executor, "info") else {}),
            "tools": {
                "audioprep": __version__,
                "python": platform.python_version(),
                **self.stage.tool_versions(),
            },
        }
        atomic_write_text(self.out_dir / STAGE_FILE, json.dumps(info, indent=2) + "\n")


class _FailFast(AudioprepError):
    """Raised when --fail-fast stopped the run at the first failed item."""

    exit_code = EXIT_ITEMS_FAILED

    def __init__(self, summary: RunSummary) -> None:
        super().__init__(
            f"{summary.stage}: stopped at the first failure (--fail-fast); the reason is in "
            f"{summary.out_dir / ERRORS}; re-run to resume."
        )
        self.summary = summary


def run_stage(stage: Stage, out_dir: str | os.PathLike[str], **kwargs: Any) -> RunSummary:
    """Run ``stage`` into ``out_dir`` (see :class:`Runner` for the options).

    >>> from audioprep.stages.trim import TrimStage  # doctest: +SKIP
    >>> run_stage(TrimStage(TrimStage.Params(head=5)), "trimmed/", in_dir="wav/")  # doctest: +SKIP
    """
    return Runner(stage, out_dir, **kwargs).run()
