"""The Ray executor: a pool of Ray actors, each holding one stage set up once.

The driver (the ``audioprep`` process) stays the only writer of manifests and journals: actors
receive input records (audio moves by path, so IN_DIR and OUT_DIR must be on storage every
node sees) and send back :class:`~audioprep.core.stage.ItemResult` objects, which the runner
journals as they stream in. At most ``inflight_per_actor`` calls are queued per actor, so the
driver's memory does not grow with the corpus.

Faults: when an actor (its worker process, or its whole node) dies, the items it held are
sent to another actor, at most ``max_retries`` times each, then recorded as failed
(``WorkerDied``) in errors.jsonl. A dead actor is replaced while the cluster has room for it.

Each item's node is appended to ``OUT_DIR/.ray-items.jsonl`` (id, node, attempt, pid), and the
per-node counts go into stage.json under ``executor_info``.

Ray is imported only when this executor starts: ``pip install 'audioprep[ray]'``.
"""

from __future__ import annotations

import collections
import contextlib
import dataclasses
import json
import logging
import math
import os
import socket
import time
import uuid
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from audioprep.core.stage import ItemResult
from audioprep.errors import AudioprepError
from audioprep.manifests.layout import RAY_ITEM_LOG, RAY_PROBE, ManifestDir
from audioprep.manifests.records import MANIFEST, Record, resolve_audio
from audioprep.run.executors.base import Executor, Worker, WorkerSpec, error_result

ADDRESS_ENV = "AUDIOPREP_RAY_ADDRESS"
ITEM_LOG = RAY_ITEM_LOG  # names owned by manifests.layout (cleared by --overwrite)
PROBE_FILE = RAY_PROBE
#: Ray's switch that keeps a node's address on loopback ("0": what a private Ray uses).
LOOPBACK_ENV = "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"
#: Ray's authentication settings (a private Ray gets a token of its own in the environment).
AUTH_MODE_ENV, AUTH_TOKEN_ENV = "RAY_AUTH_MODE", "RAY_AUTH_TOKEN"
#: The head is checked this often (s); this many failed checks in a row mean it is gone.
HEAD_CHECK_S, HEAD_MISSES = 1.0, 3
_CONNECTED: str | None = None  # the address this process's Ray is connected to


def resolve_address(address: str | None) -> str | None:
    """``--ray-address``, else ``$AUDIOPREP_RAY_ADDRESS``, else None (start Ray in-process)."""
    return address or os.environ.get(ADDRESS_ENV) or None


def _host_port(address: str) -> tuple[str, int] | None:
    """``(host, port)`` of a ``host:port`` address; None for ``auto``, ``ray://`` and the like."""
    if "://" in address or ":" not in address:
        return None
    host, _, port = address.rpartition(":")
    try:
        return host.strip("[]"), int(port)
    except ValueError:
        return None


def _is_loopback(host: str) -> bool:
    """
    >>> _is_loopback("127.0.0.1"), _is_loopback("localhost"), _is_loopback("10.0.0.2")
    (True, True, False)
    """
    return host in ("localhost", "::1") or host.startswith("127.")


def speaks_grpc(where: tuple[str, int], *, timeout: float = 5.0) -> bool:
    """Whether ``host:port`` answers the HTTP/2 connection preface with a SETTINGS frame, as
    Ray's GCS (a gRPC server) does; a web server, an SSH daemon or a silent port does not.
    Never waits longer than ``timeout``."""
    preface = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + b"\x00\x00\x00\x04\x00\x00\x00\x00\x00"
    try:
        with socket.create_connection(where, timeout=timeout) as sock:
            sock.settimeout(timeout)
            sock.sendall(preface)
            head = b""
            while len(head) < 9:
                part = sock.recv(9 - len(head))
                if not part:
                    break
                head += part
    except OSError:
        return False
    return len(head) == 9 and head[3] == 0x04  # frame type 4: SETTINGS


def access_problem(spec: WorkerSpec, probe: dict[str, Any]) -> str | None:
    """Why this process cannot read IN_DIR or write OUT_DIR as the driver sees them; None if it can.

    ``probe`` holds what the driver saw: the nonce it wrote to OUT_DIR/.ray-probe, the size of
    IN_DIR's manifest and the first input's audio path. A node whose OUT_DIR is another disk
    (not shared storage) reads no nonce, or another one.
    """
    host = socket.gethostname()
    out = Path(spec.out_dir)
    try:
        nonce = (out / PROBE_FILE).read_text(encoding="utf-8").strip()
    except OSError:
        nonce = None
    if nonce != probe["nonce"]:
        return (
            f"a Ray worker on {host} does not see the driver's OUT_DIR {out} (it must be on "
            "storage every node mounts at the same path)"
        )
    tmp = out / ".tmp" / f"ray-probe-{host}-{os.getpid()}"
    try:
        tmp.parent.mkdir(parents=True, exist_ok=True)
        tmp.write_bytes(b"ok")
        tmp.unlink()
    except OSError as exc:
        return f"a Ray worker on {host} cannot write to OUT_DIR {out} ({exc.strerror or exc})"
    if spec.in_dir is not None:
        in_dir = Path(spec.in_dir)
        try:
            size = (in_dir / MANIFEST).stat().st_size
        except OSError:
            size = None
        if size != probe["manifest_size"]:
            return (
                f"a Ray worker on {host} does not see the driver's IN_DIR {in_dir} (it must be "
                "on storage every node mounts at the same path)"
            )
        if probe.get("audio"):
            try:
                with open(resolve_audio(in_dir, probe["audio"]), "rb") as fh:
                    fh.read(1)
            except (OSError, ValueError) as exc:
                return (
                    f"a Ray worker on {host} cannot read the input audio {probe['audio']!r} "
                    f"in {in_dir} ({getattr(exc, 'strerror', None) or exc})"
                )
    return None


class RayWorker:
    """The actor: checks its access to the directories, then sets the stage up once."""

    def __init__(self, spec: WorkerSpec, probe: dict[str, Any]) -> None:
        import ray

        self.node = ray.get_runtime_context().get_node_id()
        self.problem = access_problem(spec, probe)
        self.worker = None if self.problem else Worker(spec)

    def ready(self) -> dict[str, Any]:
        return {
            "node": self.node,
            "pid": os.getpid(),
            "problem": self.problem,
            "setup_error": self.worker.setup_error if self.worker else None,
        }

    def run(self, records: list[Record]) -> tuple[str, int, list[ItemResult]]:
        assert self.worker is not None
        process_many = getattr(self.worker, "process_many", None)
        if process_many is not None:
            results = process_many(records)
        else:
            results = [self.worker.process(r) for r in records]
        return self.node, os.getpid(), results

    def close(self) -> None:
        """The stage's ``teardown``, before the actor is killed."""
        if self.worker is not None:
            self.worker.close()


@dataclasses.dataclass
class _Actor:
    handle: Any
    key: int
    node: str = ""
    inflight: int = 0
    alive: bool = True


@dataclasses.dataclass
class _Call:
    actor: _Actor
    items: list[tuple[Record, int]]  # (record, attempts so far)


class RayExecutor(Executor):
    """Runs items on a Ray cluster (``address``) or on a Ray started in this process (None).

    ``actors`` defaults to as many as the cluster's CPUs (and GPUs) hold with the stage's
    ``resources``; ``num_cpus``/``num_gpus`` override those (fractional GPUs share one card).
    ``batch_size`` records go to an actor per call (the stage's ``process_batch`` sees them
    together).
    """

    def __init__(
        self,
        address: str | None = None,
        *,
        actors: int | None = None,
        num_cpus: float | None = None,
        num_gpus: float | None = None,
        batch_size: int = 1,
        max_retries: int = 2,
        inflight_per_actor: int = 2,
        start_timeout: float = 120.0,
        connect_timeout: float = 5.0,
    ) -> None:
        self.address = resolve_address(address)
        self.actors = actors
        self.num_cpus = num_cpus
        self.num_gpus = num_gpus
        self.batch_size = max(1, batch_size)
        self.max_retries = max(0, max_retries)
        self.inflight_per_actor = max(1, inflight_per_actor)
        self.start_timeout = start_timeout
        self.connect_timeout = connect_timeout
        self.jobs = actors or 1
        self._info: dict[str, Any] = {}

    # -- connecting (before OUT_DIR is touched) ---------------------------------------------
    def check(self) -> None:
        """Import Ray and connect to the cluster; raise AudioprepError (one sentence) if not."""
        where = _host_port(self.address) if self.address else None
        if self.address is None or (where is not None and _is_loopback(where[0])):
            # Ray rewrites 127.0.0.1 to the machine's interface address unless clusters are
            # "disabled": a private or loopback Ray stays on loopback (set before the import)
            os.environ.setdefault(LOOPBACK_ENV, "0")
        try:
            import ray
        except ImportError:
            raise AudioprepError(
                "--executor ray needs Ray, which is not installed here; run `make setup` or "
                "`pip install 'audioprep[ray]'`, or use --executor local."
            ) from None
        if os.environ.get(LOOPBACK_ENV) == "0":
            import ray._private.ray_constants as ray_constants

            ray_constants.ENABLE_RAY_CLUSTER = False  # Ray may have been imported before
        global _CONNECTED
        if ray.is_initialized():
            if (self.address or "local") == _CONNECTED:
                return
            ray.shutdown()  # connected elsewhere (another cluster earlier in this process)
        if where is not None:
            try:
                socket.create_connection(where, timeout=self.connect_timeout).close()
            except OSError:
                raise AudioprepError(
                    f"no Ray cluster answers at {self.address}; start one there "
                    "(`ray start --head`, see docs/cluster.md) or fix --ray-address / "
                    f"${ADDRESS_ENV}."
                ) from None
            if not speaks_grpc(where, timeout=self.connect_timeout):
                raise AudioprepError(
                    f"{self.address} answers but is not a Ray cluster (no gRPC service there); "
                    f"give the head node's GCS port (6379 unless `ray start --port` said "
                    f"otherwise) in --ray-address / ${ADDRESS_ENV}."
                )
        kwargs: dict[str, Any] = {
            "logging_level": logging.ERROR,
            "log_to_driver": False,
            "namespace": "audioprep",
        }
        if self.address:
            kwargs["address"] = self.address
        else:  # a Ray of our own, on this machine only: "local" starts a new one, never the
            # cluster `ray start` recorded in Ray's temporary folder (what None would join)
            kwargs.update(address="local", include_dashboard=False, _node_ip_address="127.0.0.1")
            if self.actors:
                kwargs["num_cpus"] = self.actors
        os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
        if not self.address:
            self._private_token()
        try:
            ray.init(**kwargs)
        except Exception as exc:  # noqa: BLE001 - any failure to connect is one sentence
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise AudioprepError(
                f"could not connect to a Ray cluster at {self.address or '(a new local one)'}: "
                f"{first}"
            ) from None
        _CONNECTED = self.address or "local"
        try:
            self._gcs = _host_port(ray.get_runtime_context().gcs_address)
        except Exception:  # noqa: BLE001 - without it a lost head is left to Ray
            self._gcs = None

    def _private_token(self) -> None:
        """A private Ray authenticates with a random token held in this process's environment
        (its nodes inherit it), unless ``RAY_AUTH_MODE`` says otherwise. Left to itself, Ray
        2.60 writes a token to ``~/.ray/auth_token``, after which every ``ray start`` on the
        machine demands it from clients that do not send it."""
        import secrets

        if AUTH_MODE_ENV in os.environ:
            return
        self._saved_env = {k: os.environ.get(k) for k in (AUTH_MODE_ENV, AUTH_TOKEN_ENV)}
        os.environ.setdefault(AUTH_TOKEN_ENV, secrets.token_hex(32))
        os.environ[AUTH_MODE_ENV] = "token"
        _refresh_ray_config()

    def head_alive(self) -> bool:
        """Whether the cluster's head (its GCS) still accepts connections."""
        gcs = getattr(self, "_gcs", None)
        if gcs is None:
            return True
        try:
            socket.create_connection(gcs, timeout=1.0).close()
        except OSError:
            return False
        return True

    def close(self) -> None:
        """Disconnect from Ray (stops the in-process Ray this executor started)."""
        global _CONNECTED
        import ray

        if ray.is_initialized():
            ray.shutdown()
        _CONNECTED = None
        saved = getattr(self, "_saved_env", None)
        if saved is not None:
            for key, value in saved.items():
                if value is None:
                    os.environ.pop(key, None)
                else:
                    os.environ[key] = value
            self._saved_env = None  # type: ignore[assignment]
            _refresh_ray_config()

    def info(self) -> dict[str, Any]:
        """What the last run did, for stage.json: actors, resources, items per node, retries."""
        return dict(self._info)

    # -- the pool ---------------------------------------------------------------------------
    def _resources(self, spec: WorkerSpec) -> tuple[float, float]:
        stage = spec.build()
        declared = getattr(stage, "resources", None)
        cpus = self.num_cpus if self.num_cpus is not None else getattr(declared, "num_cpus", 1)
        gpus = self.num_gpus if self.num_gpus is not None else getattr(declared, "num_gpus", 0)
        device = stage.device
        if self.num_gpus is None:
            if device == "cpu":
                gpus = 0  # a stage asked to run on the CPU holds no GPU
            elif device == "cuda" and not gpus:
                gpus = 1  # a stage that declares no share gets a whole GPU per actor
        return float(cpus or 0), float(gpus or 0)

    def _pool_size(self, cpus: float, gpus: float) -> int:
        if self.actors:
            return self.actors
        import ray

        total = ray.cluster_resources()
        fits = [math.floor(total.get("CPU", 0) / cpus + 1e-9)] if cpus > 0 else []
        if gpus > 0:
            fits.append(math.floor(total.get("GPU", 0) / gpus + 1e-9))
            if not total.get("GPU"):
                raise AudioprepError(
                    f"each actor needs {gpus:g} GPU but the Ray cluster has none; start nodes "
                    "with GPUs (`ray start --num-gpus N`) or run with --device cpu."
                )
        return max(1, min(fits) if fits else 1)

    def _probe(self, spec: WorkerSpec, first: Record | None) -> dict[str, Any]:
        nonce = uuid.uuid4().hex
        out = Path(spec.out_dir)
        ManifestDir(out).write_log(PROBE_FILE, nonce + "\n")
        probe: dict[str, Any] = {"nonce": nonce, "manifest_size": None, "audio": None}
        if spec.in_dir is not None:
            probe["manifest_size"] = (Path(spec.in_dir) / MANIFEST).stat().st_size
            if first is not None and isinstance(first.get("audio"), str):
                probe["audio"] = first["audio"]
        return probe

    def map_unordered(self, spec: WorkerSpec, items: Iterable[Record]) -> Iterator[ItemResult]:
        import ray
        from ray.exceptions import GetTimeoutError, RayActorError, RayError, RayTaskError

        self.check()
        cpus, gpus = self._resources(spec)
        size = self._pool_size(cpus, gpus)
        self.jobs = size
        spec = dataclasses.replace(spec, threads=max(1, int(cpus)))
        source = iter(items)
        peeked: collections.deque[tuple[Record, int]] = collections.deque()
        try:
            peeked.append((next(source), 0))
        except StopIteration:
            return
        probe = self._probe(spec, peeked[0][0])
        remote_cls = ray.remote(RayWorker).options(
            num_cpus=cpus, num_gpus=gpus, max_restarts=0, max_task_retries=0
        )
        files = ManifestDir(spec.out_dir)
        nodes: collections.Counter[str] = collections.Counter()
        self._info = {
            "address": self.address or "local",
            "actors": size,
            "actor_resources": {"num_cpus": cpus, "num_gpus": gpus},
            "batch_size": self.batch_size,
            "items_per_node": nodes,
            "retried": 0,
            "actors_died": 0,
        }
        pool: dict[int, _Actor] = {}
        starting: dict[Any, _Actor] = {}  # ready() ref -> actor
        inflight: dict[Any, _Call] = {}
        keys = iter(range(1_000_000))
        replacements = 2 * size

        def start_actor() -> None:
            actor = _Actor(remote_cls.remote(spec, probe), next(keys))
            starting[actor.handle.ready.remote()] = actor

        def next_batch() -> list[tuple[Record, int]]:
            batch: list[tuple[Record, int]] = []
            while peeked and len(batch) < self.batch_size:
                batch.append(peeked.popleft())
            while len(batch) < self.batch_size:
                try:
                    batch.append((next(source), 0))
                except StopIteration:
                    break
            return batch

        def fail_actor(actor: _Actor) -> None:
            nonlocal replacements
            if actor.alive:
                actor.alive = False
                self._info["actors_died"] += 1
                pool.pop(actor.key, None)
                with contextlib.suppress(Exception):
                    ray.kill(actor.handle, no_restart=True)
                if replacements > 0:
                    replacements -= 1
                    start_actor()

        log = files.open_log(ITEM_LOG)  # closed in finally
        started = time.monotonic()
        lost_since: float | None = None
        head_checked, head_misses = time.monotonic(), 0
        try:
            for _ in range(size):
                start_actor()
            while True:
                # fill every live actor up to its share of calls in flight
                for actor in sorted(pool.values(), key=lambda a: a.inflight):
                    while actor.inflight < self.inflight_per_actor:
                        batch = next_batch()
                        if not batch:
                            break
                        ref = actor.handle.run.remote([r for r, _ in batch])
                        inflight[ref] = _Call(actor, batch)
                        actor.inflight += 1
                if not inflight and not peeked:
                    batch = next_batch()
                    if not batch:
                        break
                    peeked.extend(batch)
                if not pool and not inflight:
                    waited_from = lost_since if lost_since is not None else started
                    if not starting or time.monotonic() - waited_from > self.start_timeout:
                        raise AudioprepError(
                            f"no Ray actor could start within {self.start_timeout:.0f} s (each "
                            f"needs {cpus:g} CPU and {gpus:g} GPU; the cluster has "
                            f"{_resources_line(ray.cluster_resources())}); re-run to resume."
                        )
                if time.monotonic() - head_checked >= HEAD_CHECK_S:
                    head_checked = time.monotonic()
                    head_misses = 0 if self.head_alive() else head_misses + 1
                    if head_misses >= HEAD_MISSES:
                        # the head is gone: Ray would end this process in a minute with a log
                        # line; every item not done yet is an error instead (re-run resumes)
                        reason = (
                            f"the Ray cluster at {self.address or 'this machine'} stopped "
                            "answering (its head node is gone); re-run to retry this item"
                        )
                        self._info["head_lost"] = True
                        for call in inflight.values():
                            for record, _ in call.items:
                                yield error_result(record, reason, "RayHeadLost")
                        inflight.clear()
                        pool.clear()
                        starting.clear()
                        while True:
                            batch = next_batch()
                            if not batch:
                                break
                            for record, _ in batch:
                                yield error_result(record, reason, "RayHeadLost")
                        return
                waiting = list(inflight) + list(starting)
                done, _ = ray.wait(waiting, num_returns=1, timeout=1.0)
                for ref in done:
                    if ref in starting:
                        actor = starting.pop(ref)
                        try:
                            state = ray.get(ref)
                        except RayError as exc:
                            if not pool and not starting and not inflight:
                                raise AudioprepError(_actor_start_error(exc)) from None
                            actor.alive = False
                            continue
                        if state["problem"]:
                            raise AudioprepError(state["problem"])
                        if state["setup_error"]:
                            raise AudioprepError(state["setup_error"])
                        actor.node = state["node"]
                        pool[actor.key] = actor
                        lost_since = None
                        continue
                    call = inflight.pop(ref)
                    call.actor.inflight -= 1
                    try:
                        node, pid, results = ray.get(ref)
                    except (RayActorError, GetTimeoutError, RayError) as exc:
                        if isinstance(exc, RayTaskError) and not isinstance(exc, RayActorError):
                            reason = f"the Ray task failed: {str(exc).strip().splitlines()[-1]}"
                            for record, _ in call.items:
                                yield error_result(record, reason, "RayTaskError")
                            continue
                        fail_actor(call.actor)
                        if not pool:
                            lost_since = lost_since or time.monotonic()
                        for record, attempts in call.items:
                            if attempts < self.max_retries:
                                self._info["retried"] += 1
                                peeked.append((record, attempts + 1))
                            else:
                                yield error_result(
                                    record,
                                    f"the Ray worker holding this item died {attempts + 1} times "
                                    "(killed, crashed, out of memory, or its node was lost); "
                                    "re-run to retry it",
                                    "WorkerDied",
                                )
                        continue
                    for (_, attempts), result in zip(call.items, results, strict=True):
                        nodes[node] += 1
                        log.write(
                            json.dumps(
                                {"id": result.id, "node": node, "pid": pid, "attempt": attempts}
                            )
                            + "\n"
                        )
                        yield result
                    log.flush()
        finally:
            log.close()
            # idle actors end with the stage's teardown; busy ones (stopped early) are killed
            busy = {id(call.actor) for call in inflight.values()}
            closing = [a.handle.close.remote() for a in pool.values() if id(a) not in busy]
            with contextlib.suppress(Exception):
                ray.wait(closing, num_returns=len(closing), timeout=30)
            for actor in list(pool.values()) + list(starting.values()):
                with contextlib.suppress(Exception):
                    ray.kill(actor.handle, no_restart=True)
            for call in inflight.values():
                with contextlib.suppress(Exception):
                    ray.kill(call.actor.handle, no_restart=True)
            with contextlib.suppress(OSError):
                (Path(spec.out_dir) / PROBE_FILE).unlink()
            self._info["items_per_node"] = dict(nodes)
            self._info["nodes"] = len(nodes)


def _refresh_ray_config() -> None:
    """Make Ray re-read its settings (the authentication mode) from the environment."""
    with contextlib.suppress(Exception):  # a Ray without token authentication
        from ray._raylet import (  # type: ignore[attr-defined]
            AuthenticationTokenLoader,
            Config,
        )

        Config.initialize("")
        AuthenticationTokenLoader.instance().reset_cache()


def _resources_line(total: dict[str, float]) -> str:
    return f"{total.get('CPU', 0):g} CPU, {total.get('GPU', 0):g} GPU"


def _actor_start_error(exc: Exception) -> str:
    text = str(exc)
    if "ModuleNotFoundError" in text or "No module named" in text:
        return (
            "the Ray workers cannot import audioprep; install audioprep in the Python that "
            "runs `ray start` on every node (or start the nodes with PYTHONPATH set)."
        )
    last = text.strip().splitlines()[-1] if text.strip() else type(exc).__name__
    return f"a Ray actor could not start: {last}"
