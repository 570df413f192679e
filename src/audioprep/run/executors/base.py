"""Executors run a stage's items: in this process, in a local process pool, later on Ray.

An executor receives a picklable :class:`WorkerSpec` (which stage, its parameters, the
directories) and an iterable of input records, and yields one :class:`ItemResult` per record
in completion order. It reads and writes no manifest: that is the runner's job.
"""

from __future__ import annotations

import contextlib
import ctypes
import dataclasses
import importlib
import multiprocessing
import multiprocessing.util
import os
import signal
import sys
import threading
import time
import traceback
from abc import ABC, abstractmethod
from collections.abc import Iterable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path
from typing import Any

from audioprep.core.stage import ItemContext, ItemResult, Stage, WorkerContext
from audioprep.errors import AudioprepError, ItemError
from audioprep.manifests.records import Record


@dataclasses.dataclass(frozen=True)
class WorkerSpec:
    """Everything a worker needs to rebuild the stage in another process."""

    stage_path: str  # "package.module:ClassName"
    params: Any
    in_dir: str | None
    out_dir: str
    threads: int = 1  # CPU threads each worker may use (cores / jobs)
    mode: str = "process"  # or "measure", the first pass of a corpus stage

    @classmethod
    def for_stage(
        cls,
        stage: Stage,
        *,
        in_dir: Path | None,
        out_dir: Path,
        threads: int = 1,
        mode: str = "process",
    ) -> WorkerSpec:
        kind = type(stage)
        return cls(
            stage_path=f"{kind.__module__}:{kind.__qualname__}",
            params=stage.params,
            in_dir=str(in_dir) if in_dir else None,
            out_dir=str(out_dir),
            threads=threads,
            mode=mode,
        )

    def build(self) -> Stage:
        module, _, name = self.stage_path.partition(":")
        stage_cls = getattr(importlib.import_module(module), name)
        stage = stage_cls(self.params)
        stage.threads = self.threads
        return stage


def error_result(record: Record, reason: str, kind: str, *, fatal: bool = False) -> ItemResult:
    """An ItemResult for a failed item, carrying the input record for errors.jsonl."""
    error: dict[str, Any] = {"reason": reason, "type": kind, "record": record}
    if fatal:
        error["fatal"] = True
    return ItemResult(id=str(record.get("id")), status="error", error=error)


#: Set (to 1) by ``audioprep --verbose``: engines' own start-up and log lines stay visible.
VERBOSE_ENV = "AUDIOPREP_VERBOSE"


@contextlib.contextmanager
def engine_output_quieted() -> Iterator[None]:
    """Send what native libraries write to file descriptor 2 (TensorFlow's and absl's start-up
    lines, oneDNN notes) to /dev/null while a stage sets up or processes, unless
    ``$AUDIOPREP_VERBOSE`` is set; Python's own ``sys.stderr`` is flushed first and restored
    with the descriptor, so nothing the runner prints is lost."""
    if os.environ.get(VERBOSE_ENV):
        yield
        return
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # TensorFlow's Python-side logging
    try:
        sys.stderr.flush()
        saved = os.dup(2)
    except (OSError, ValueError, AttributeError):  # no descriptor 2 (an embedding host)
        yield
        return
    try:
        null = os.open(os.devnull, os.O_WRONLY)
        try:
            os.dup2(null, 2)
        finally:
            os.close(null)
        yield
    finally:
        with contextlib.suppress(OSError, ValueError, AttributeError):
            sys.stderr.flush()
        os.dup2(saved, 2)
        os.close(saved)


class Worker:
    """Holds one stage instance, set up once, and processes items with it."""

    def __init__(self, spec: WorkerSpec) -> None:
        with engine_output_quieted():
            self._start(spec)

    def _start(self, spec: WorkerSpec) -> None:
        self.spec = spec
        self.stage = spec.build()
        self.setup_error: str | None = None
        ctx = WorkerContext(
            threads=spec.threads,
            in_dir=Path(spec.in_dir) if spec.in_dir else None,
            out_dir=Path(spec.out_dir),
            device=self.stage.device or "cpu",
        )
        try:
            self.stage.threads = ctx.threads
            self.stage.setup(ctx)
        except AudioprepError as exc:
            self.setup_error = str(exc)
        except Exception as exc:  # noqa: BLE001 - reported to the user as a fatal error
            self.setup_error = f"{self.stage.name} could not start: {type(exc).__name__}: {exc}"

    def close(self) -> None:
        """End the worker: the stage's ``teardown`` (its failure is not the items')."""
        with contextlib.suppress(Exception):
            self.stage.teardown()

    def process(self, record: Record) -> ItemResult:
        with engine_output_quieted():
            return self._process(record)

    def _process(self, record: Record) -> ItemResult:
        if self.setup_error:
            return error_result(record, self.setup_error, "SetupError", fatal=True)
        ctx = ItemContext(
            stage_name=self.stage.name,
            in_dir=Path(self.spec.in_dir) if self.spec.in_dir else None,
            out_dir=Path(self.spec.out_dir),
            outputs=self.stage.outputs,
        )
        started = time.perf_counter()
        try:
            if self.spec.mode == "measure":  # a rejected item has no measurement
                measurement = self.stage.measure(record, ctx)  # type: ignore[attr-defined]
                records = [] if ctx.rejected else [measurement]
            else:
                records = list(self.stage.process(record, ctx))  # type: ignore[attr-defined]
        except ItemError as exc:
            return error_result(record, str(exc), "ItemError")
        except AudioprepError as exc:
            return error_result(record, str(exc), type(exc).__name__, fatal=True)
        except Exception as exc:  # noqa: BLE001 - any failure of one item is recorded, not fatal
            where = traceback.extract_tb(exc.__traceback__)[-1]
            reason = f"{type(exc).__name__}: {exc} (at {Path(where.filename).name}:{where.lineno})"
            return error_result(record, reason, type(exc).__name__)
        if not records and not ctx.rejected:
            ctx.reject(record, f"{self.stage.name} produced no output for this item")
        return ItemResult(
            id=str(record["id"]),
            status="ok" if records else "rejected",
            records=records,
            rejected=ctx.rejected,
            seconds=round(time.perf_counter() - started, 4),
        )

    def process_many(self, records: list[Record]) -> list[ItemResult]:
        """Several items, one result each: together through the stage's ``process_batch``
        (a model's forward pass over many items) when it has one, else one by one. A corpus
        stage's first pass uses ``measure_batch(records, ctxs) -> list[measurement]`` likewise.

        A batch that raises is redone item by item, so a failure is charged to its own item.
        """
        measuring = self.spec.mode == "measure"
        name = "measure_batch" if measuring else "process_batch"
        batch_fn = getattr(self.stage, name, None)
        if len(records) < 2 or batch_fn is None or self.setup_error:
            return [self.process(r) for r in records]
        in_dir = Path(self.spec.in_dir) if self.spec.in_dir else None
        ctxs = [
            ItemContext(
                stage_name=self.stage.name,
                in_dir=in_dir,
                out_dir=Path(self.spec.out_dir),
                outputs=self.stage.outputs,
            )
            for _ in records
        ]
        started = time.perf_counter()
        try:
            with engine_output_quieted():
                if measuring:  # a rejected item has no measurement
                    outputs = [
                        [] if ctx.rejected else [m]
                        for m, ctx in zip(batch_fn(records, ctxs), ctxs, strict=True)
                    ]
                else:
                    outputs = [list(out) for out in batch_fn(records, ctxs)]
        except AudioprepError as exc:
            return [error_result(r, str(exc), type(exc).__name__, fatal=True) for r in records]
        except Exception:  # noqa: BLE001 - redo one by one: the item at fault gets the error
            return [self.process(r) for r in records]
        seconds = round((time.perf_counter() - started) / len(records), 4)
        results = []
        for record, ctx, out in zip(records, ctxs, outputs, strict=True):
            if not out and not ctx.rejected:
                ctx.reject(record, f"{self.stage.name} produced no output for this item")
            results.append(
                ItemResult(
                    id=str(record["id"]),
                    status="ok" if out else "rejected",
                    records=out,
                    rejected=ctx.rejected,
                    seconds=seconds,
                )
            )
        return results


class Executor(ABC):
    """Runs items through workers; yields results as they complete."""

    jobs: int = 1

    @abstractmethod
    def map_unordered(self, spec: WorkerSpec, items: Iterable[Record]) -> Iterator[ItemResult]:
        """Yield one ItemResult per item, in completion order. Closing the iterator stops work."""


def batches(items: Iterable[Record], size: int) -> Iterator[list[Record]]:
    """``items`` in lists of ``size`` (the last one shorter)."""
    batch: list[Record] = []
    for item in items:
        batch.append(item)
        if len(batch) >= size:
            yield batch
            batch = []
    if batch:
        yield batch


class SerialExecutor(Executor):
    """Runs every item in this process, one after the other (``--jobs 1``).

    With ``batch_size`` > 1, items go to the stage ``batch_size`` at a time (``process_batch``).
    """

    def __init__(self, batch_size: int = 1) -> None:
        self.batch_size = max(1, batch_size)

    def map_unordered(self, spec: WorkerSpec, items: Iterable[Record]) -> Iterator[ItemResult]:
        worker = Worker(spec)
        try:
            if self.batch_size == 1:
                for item in items:
                    yield worker.process(item)
                return
            for batch in batches(items, self.batch_size):
                yield from worker.process_many(batch)
        finally:
            worker.close()


_WORKER: Worker | None = None


def _die_with_parent(parent_pid: int) -> None:
    """Ask Linux to SIGKILL this worker when its parent dies (kill -9 of the runner).

    The request only covers a parent alive when it is made: a runner killed while the pool
    was starting (before this initializer ran) has already left the worker to another parent,
    so the worker checks that and exits at once. Without that, the orphan would wait forever
    on the call queue (its siblings hold the queue's other end open), holding the caller's
    stdout/stderr and the resource tracker's pipe, so a script waiting for the output hangs.
    """
    with contextlib.suppress(Exception):
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    if os.getppid() != parent_pid:
        os._exit(1)
    threading.Thread(target=_watch_parent, args=(parent_pid,), daemon=True).start()


def _watch_parent(parent_pid: int) -> None:
    """Where PR_SET_PDEATHSIG is missing (not Linux): poll the parent, exit when it is gone."""
    while True:
        time.sleep(0.5)
        if os.getppid() != parent_pid:
            os._exit(1)


def _init_worker(spec: WorkerSpec, parent_pid: int | None = None) -> None:
    global _WORKER
    _die_with_parent(parent_pid if parent_pid is not None else os.getppid())
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the runner handles Ctrl-C
    _WORKER = Worker(spec)
    # the pool ends a worker by returning from its loop: multiprocessing then runs its
    # finalizers (a worker terminated on fail-fast or Ctrl-C runs none; its engines' child
    # processes see their pipes close)
    multiprocessing.util.Finalize(None, _WORKER.close, exitpriority=10)


def _process_in_worker(record: Record) -> ItemResult:
    assert _WORKER is not None
    return _WORKER.process(record)


def _process_batch_in_worker(records: list[Record]) -> list[ItemResult]:
    assert _WORKER is not None
    return _WORKER.process_many(records)


class ProcessPoolExecutorBackend(Executor):
    """A pool of ``jobs`` local worker processes (spawned, so they share no open files)."""

    def __init__(self, jobs: int, batch_size: int = 1) -> None:
        self.jobs = max(1, jobs)
        self.batch_size = max(1, batch_size)

    def _new_pool(self, spec: WorkerSpec) -> ProcessPoolExecutor:
        return ProcessPoolExecutor(
            max_workers=self.jobs,
            mp_context=multiprocessing.get_context("spawn"),
            initializer=_init_worker,
            initargs=(spec, os.getpid()),
        )

    def map_unordered(self, spec: WorkerSpec, items: Iterable[Record]) -> Iterator[ItemResult]:
        if self.batch_size == 1:
            yield from self._map(spec, items, _process_in_worker)
            return
        for results in self._map(spec, batches(items, self.batch_size), _process_batch_in_worker):
            yield from results

    def _map(self, spec: WorkerSpec, items: Iterable[Any], call: Any) -> Iterator[Any]:
        """Yield ``call(item)`` for each item (a record or a batch of them) from the pool."""
        pool = self._new_pool(spec)
        inflight: dict[Future[Any], Any] = {}
        source = iter(items)
        exhausted = False
        finished = False
        try:
            while True:
                while not exhausted and len(inflight) < 2 * self.jobs:
                    try:
                        record = next(source)
                    except StopIteration:
                        exhausted = True
                        break
                    inflight[pool.submit(call, record)] = record
                if not inflight:
                    break
                done, _ = wait(inflight, return_when=FIRST_COMPLETED)
                broken = False
                for future in done:
                    record = inflight.pop(future)
                    try:
                        result = future.result()
                    except BrokenProcessPool:
                        broken = True
                        result = _died(
                            record,
                            "a worker process died (killed, crashed or out of memory) while "
                            "this item was in flight; re-run to retry it",
                        )
                    yield result
                if broken:
                    for record in inflight.values():
                        yield _died(
                            record,
                            "a worker process died while this item was in flight; re-run to retry",
                        )
                    inflight.clear()
                    pool.shutdown(wait=False, cancel_futures=True)
                    pool = self._new_pool(spec)
            finished = True
        finally:
            if not finished:  # stopped early (fail-fast, Ctrl-C): do not wait for running items
                for process in list(getattr(pool, "_processes", {}).values()):
                    with contextlib.suppress(Exception):
                        process.terminate()
            pool.shutdown(wait=finished, cancel_futures=True)


def _died(item: Record | list[Record], reason: str) -> ItemResult | list[ItemResult]:
    """The WorkerDied result of a record, or the results of a batch of them."""
    if isinstance(item, list):
        return [error_result(r, reason, "WorkerDied") for r in item]
    return error_result(item, reason, "WorkerDied")


def local_executor(jobs: int, batch_size: int = 1) -> Executor:
    """The default executor: in-process for one job, a process pool for more."""
    if jobs <= 1:
        return SerialExecutor(batch_size)
    return ProcessPoolExecutorBackend(jobs, batch_size)
