"""A throw-away Ray cluster on 127.0.0.1 for tests and benchmarks (``ray start --block`` nodes).

Each node is a ``ray start --block`` child process in its own process group, stopped by that
group's id: never ``ray stop``, which stops every Ray process on the machine, other users' too.
Every port is a free one picked at random, so several clusters can share a machine.
"""

from __future__ import annotations

import contextlib
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

LOOPBACK_ENV = "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"


def recorded_cluster_file() -> Path:
    """Ray's record of the last cluster `ray start` made on this machine, which a bare
    ``ray.init()`` joins: ``$RAY_TMPDIR/ray/ray_current_cluster`` (else ``$TMPDIR``, ``/tmp``)."""
    base = os.environ.get("RAY_TMPDIR") or os.environ.get("TMPDIR") or "/tmp"
    return Path(base) / "ray" / "ray_current_cluster"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


#: Worker ports come from below the kernel's ephemeral range (32768 and up here), where
#: :func:`free_port` and the ports Ray picks itself never land: a worker range drawn from the
#: ephemeral range could hold a port another component of this or another cluster took.
WORKER_PORTS_BELOW = 32000
WORKER_PORT_COUNT = 200


def _bindable(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def worker_port_range(rng: random.Random | None = None) -> tuple[int, int]:
    """``(lo, hi)``: a block of worker ports under :data:`WORKER_PORTS_BELOW` that is free now.

    >>> lo, hi = worker_port_range(random.Random(0))
    >>> hi - lo == WORKER_PORT_COUNT and hi < WORKER_PORTS_BELOW
    True
    """
    rng = rng or random.Random()
    for _ in range(100):
        lo = rng.randrange(12000, WORKER_PORTS_BELOW - WORKER_PORT_COUNT)
        if all(_bindable(p) for p in range(lo, lo + WORKER_PORT_COUNT + 1, 10)):
            return lo, lo + WORKER_PORT_COUNT
    raise RuntimeError("no free block of worker ports under 32000 on this machine")


def _ray_bin() -> str:
    candidate = Path(sys.executable).with_name("ray")
    return str(candidate) if candidate.exists() else "ray"


class LocalRayCluster:
    """``nodes`` Ray nodes of ``cpus_per_node`` CPUs each, all on 127.0.0.1.

    >>> with LocalRayCluster(nodes=2) as cluster:  # doctest: +SKIP
    ...     run_stage(stage, out, in_dir=inp, executor=RayExecutor(cluster.address))
    """

    def __init__(
        self,
        nodes: int = 2,
        *,
        cpus_per_node: int = 1,
        env: dict[str, str] | None = None,
        object_store_mb: int = 100,
    ) -> None:
        self.n_nodes = nodes
        self.cpus = cpus_per_node
        self.port = free_port()
        self.address = f"127.0.0.1:{self.port}"
        self.temp_dir = Path(tempfile.mkdtemp(prefix="apray-", dir="/tmp"))
        self.env = {
            **os.environ,
            "RAY_USAGE_STATS_ENABLED": "0",
            # a one-node cluster and its clients stay on 127.0.0.1 (Ray would rewrite it to the
            # interface address); a node joining another needs "1" (`ray start --address`
            # refuses otherwise), so a cluster of several nodes runs with "1"
            LOOPBACK_ENV: "0" if nodes == 1 else "1",
            # a loopback test cluster without token authentication: Ray 2.60 turns it on for
            # `ray start` whenever ~/.ray/auth_token exists (a bare ray.init() writes one),
            # and then refuses clients that do not send it
            "RAY_AUTH_MODE": "disabled",
            # notice a lost node in about 2 s rather than 15 s
            "RAY_health_check_period_ms": "500",
            "RAY_health_check_timeout_ms": "1000",
            "RAY_health_check_failure_threshold": "3",
            **(env or {}),
        }
        self.object_store = object_store_mb * 2**20
        self.procs: list[subprocess.Popen[bytes]] = []

    def _start(self, head: bool) -> subprocess.Popen[bytes]:
        lo, hi = worker_port_range()
        cmd = [
            _ray_bin(),
            "start",
            "--block",
            "--node-ip-address",
            "127.0.0.1",
            "--num-cpus",
            str(self.cpus),
            "--disable-usage-stats",
            "--object-store-memory",
            str(self.object_store),
            "--ray-client-server-port",
            str(free_port()),
            "--dashboard-agent-listen-port",
            str(free_port()),
            "--dashboard-agent-grpc-port",
            str(free_port()),
            "--runtime-env-agent-port",
            str(free_port()),
            "--metrics-export-port",
            str(free_port()),
            "--min-worker-port",
            str(lo),
            "--max-worker-port",
            str(hi),
        ]
        if head:
            cmd += [
                "--head",
                "--port",
                str(self.port),
                "--include-dashboard",
                "false",
                "--temp-dir",
                str(self.temp_dir),
            ]
        else:
            cmd += ["--address", self.address]
        log = open(self.temp_dir / f"node-{len(self.procs)}.log", "wb")  # noqa: SIM115
        proc = subprocess.Popen(
            cmd,
            env=self.env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        log.close()
        self.procs.append(proc)
        return proc

    def _wait_nodes(self, count: int, timeout: float) -> None:
        code = (
            "import ray,sys;ray.init(address=sys.argv[1],logging_level='ERROR');"
            "print(sum(1 for n in ray.nodes() if n['Alive']))"
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for proc in self.procs:
                if proc.poll() is not None:
                    raise RuntimeError(f"a ray node exited early:\n{self.logs()}")
            out = subprocess.run(
                [sys.executable, "-c", code, self.address],
                capture_output=True,
                text=True,
                env=self.env,
            )
            alive = out.stdout.strip()
            if out.returncode == 0 and alive.isdigit() and int(alive) >= count:
                return
            time.sleep(0.5)
        raise RuntimeError(f"the Ray cluster did not come up in {timeout:.0f} s")

    def start(self, timeout: float = 90.0) -> LocalRayCluster:
        self._start(head=True)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:  # the GCS port answers
            with contextlib.suppress(OSError):
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                break
            if self.procs[0].poll() is not None:
                raise RuntimeError(f"ray start --head exited:\n{self.logs()}")
            time.sleep(0.3)
        for _ in range(self.n_nodes - 1):
            self._start(head=False)
        self._wait_nodes(self.n_nodes, max(10.0, deadline - time.monotonic()))
        return self

    def logs(self, tail: int = 3000) -> str:
        """The last characters of every node's ``ray start`` output."""
        parts = []
        for path in sorted(self.temp_dir.glob("node-*.log")):
            parts.append(f"--- {path.name}\n{path.read_text(errors='replace')[-tail:]}")
        return "\n".join(parts)

    def kill_node(self, index: int) -> None:
        """SIGKILL every process of node ``index`` (its ray start, raylet and workers)."""
        proc = self.procs[index]
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()

    def stop(self) -> None:
        for proc in reversed(self.procs):
            if proc.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGTERM)
        for proc in reversed(self.procs):
            try:
                proc.wait(timeout=3)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
            with contextlib.suppress(ProcessLookupError):  # stragglers of the group
                os.killpg(proc.pid, signal.SIGKILL)
        shutil.rmtree(self.temp_dir, ignore_errors=True)  # with the ray_current_cluster file
        recorded = recorded_cluster_file()
        with contextlib.suppress(OSError):
            if recorded.read_text().strip().endswith(f":{self.port}"):
                recorded.unlink()  # never leave this cluster recorded for `ray.init()`

    def __enter__(self) -> LocalRayCluster:
        try:
            return self.start()
        except BaseException:
            self.stop()
            raise

    def __exit__(self, *exc: object) -> None:
        self.stop()
