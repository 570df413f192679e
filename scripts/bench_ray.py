"""make bench (ray section): the Ray executor against the local process pool.

Starts throw-away Ray clusters on 127.0.0.1 (``ray start --block`` children, stopped by process
group; never ``ray stop``) and times, in the same run:

- convert and segment on the same short files: local pool ``-j 2`` against Ray (one node of
  2 CPUs, 2 actors);
- convert on two 1-CPU Ray nodes against one 1-CPU node;
- a manifest of N items through a stage doing no audio work (``NoopStage``): items per second
  and the driver's own peak RSS, for N = 2,000 and 20,000, local pool and Ray.

Each run is a separate driver process (``--driver``) so its peak memory is its own. Cluster
start-up is not timed; connecting to the cluster is. Usage:
python scripts/bench_ray.py [--quick] [--only pool,nodes,noop]
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import json
import os
import platform
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SCRIPTS = Path(__file__).resolve().parent
sys.path[:0] = [str(REPO / "src"), str(SCRIPTS)]

from audioprep.core.stage import MapStage, Stage  # noqa: E402

SHARED = Path(os.environ.get("AUDIOPREP_SHARED", REPO.parent / "shared"))
MODELS = os.environ.get("AUDIOPREP_MODEL_DIR", str(SHARED / "models"))
OUT = REPO / "bench-out"


class NoopStage(MapStage):
    """Passes every record on unchanged: the executor's own cost per item."""

    name = "noop"

    @dataclasses.dataclass(frozen=True)
    class Params:
        pass

    def process(self, record, ctx):
        return [record]


def _stage(name: str) -> Stage:
    if name == "noop":  # by its module name: Ray actors cannot import `__main__`'s classes
        from bench_ray import NoopStage as Importable

        return Importable()
    if name == "convert":
        from audioprep.stages.convert import ConvertStage

        return ConvertStage(ConvertStage.Params(sample_rate=16000, channels=1))
    from audioprep.stages.segment import SegmentStage

    return SegmentStage(SegmentStage.Params(model_dir=MODELS))


def driver(job: dict) -> None:
    """One run in this process; print seconds, items and this process's peak RSS as JSON."""
    from audioprep.run.runner import run_stage

    executor = None
    if job["executor"] == "ray":
        from audioprep.run.executors.ray import RayExecutor

        executor = RayExecutor(job["address"], batch_size=job.get("batch_size", 1))
    t0 = time.perf_counter()
    summary = run_stage(
        _stage(job["stage"]),
        job["out"],
        in_dir=job["in"],
        jobs=job.get("jobs", 2),
        executor=executor,
        batch_size=job.get("batch_size", 1),
        overwrite=True,
        progress=False,
    )
    seconds = time.perf_counter() - t0
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(
        json.dumps(
            {"s": round(seconds, 2), "items": summary.items_ok, "driver_peak_mb": round(peak)}
        )
    )


def run_driver(**job) -> dict:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO / "src"), str(SCRIPTS)])}
    proc = subprocess.run(
        [sys.executable, str(Path(__file__)), "--driver", json.dumps(job, default=str)],
        capture_output=True,
        text=True,
        env=env,
    )
    if proc.returncode not in (0, 1) or not proc.stdout.strip():
        raise SystemExit(f"bench_ray: driver failed ({proc.returncode}): {proc.stderr[-2000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def noop_manifest(path: Path, n: int) -> Path:
    if (path / "manifest.jsonl").exists():
        return path
    (path / "audio").mkdir(parents=True, exist_ok=True)
    (path / "audio" / "one.wav").write_bytes(b"RIFF")  # every record names this one file
    with open(path / "manifest.jsonl", "w") as fh:
        for i in range(n):
            record = {"id": f"item-{i:06d}", "audio": "audio/one.wav", "duration": 1.0}
            record.update(sample_rate=16000, channels=1)
            fh.write(json.dumps(record) + "\n")
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--driver", help=argparse.SUPPRESS)
    parser.add_argument(
        "--quick", action="store_true", help="40 short files (12 for segment) instead of 240 (60)"
    )
    parser.add_argument("--only", default="pool,nodes,noop")
    parser.add_argument("--repeat", type=int, default=2, help="runs of each (best kept), 1 or 2")
    args = parser.parse_args()
    if args.driver:
        driver(json.loads(args.driver))
        return
    from audioprep.testing.ray_cluster import LocalRayCluster

    sys.path.insert(0, str(SCRIPTS))
    import bench

    def short_corpus() -> Path:
        """bench.py's 240 short mp3 files (without its 1-hour file, which this does not use)."""
        short = bench.CORPUS / "short240"
        if not short.is_dir():
            long_dir = bench.CORPUS / "long"
            long_dir.mkdir(parents=True, exist_ok=True)
            (long_dir / "one-hour.mp3").touch()  # build_corpus then makes only the short ones
            bench.build_corpus(240)
            (long_dir / "one-hour.mp3").unlink()
        return short

    only = set(args.only.split(","))
    n_files = 40 if args.quick else 240
    n_segment = 12 if args.quick else 60
    repeat = 1 if args.repeat < 2 else 2
    work = OUT / "ray"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    env = {"PYTHONPATH": os.pathsep.join([str(REPO / "src"), str(SCRIPTS)])}
    rows: list[dict] = []

    def show(name: str, **cells: object) -> None:
        rows.append({"bench": name, **cells})
        print(f"{name:34} " + "  ".join(f"{k}={v}" for k, v in cells.items()), flush=True)

    raw = work / "raw"
    if "pool" in only or "nodes" in only:
        files = sorted(short_corpus().glob("*.mp3"))[:n_files]
        sub = work / "files"
        sub.mkdir()
        for f in files:
            os.link(f, sub / f.name)
        from audioprep.run.runner import run_stage
        from audioprep.stages.ingest import IngestStage

        run_stage(IngestStage(IngestStage.Params(sources=(str(sub),))), raw, progress=False)
    if "pool" in only:
        with LocalRayCluster(nodes=1, cpus_per_node=2, env=env) as cluster:
            for stage, src, n in (("convert", raw, n_files), ("segment", None, n_segment)):
                if src is None:  # segment reads convert's output, cut to its first n items
                    src = work / "segment-in"
                    (src / "audio").mkdir(parents=True)
                    conv = work / "convert-local"
                    lines = (conv / "manifest.jsonl").read_text().splitlines()[:n]
                    for line in lines:
                        rel = json.loads(line)["audio"]
                        os.link(conv / rel, src / rel)
                    (src / "manifest.jsonl").write_text("".join(x + "\n" for x in lines))
                best = {"local": float("inf"), "ray": float("inf")}
                order = ("local", "ray", "ray", "local")[: 2 * repeat]  # alternate: fair caches
                for kind in order:
                    job = {"executor": kind, "jobs": 2, "out": work / f"{stage}-{kind}"}
                    if kind == "ray":
                        job["address"] = cluster.address
                    best[kind] = min(best[kind], run_driver(stage=stage, **job, **{"in": src})["s"])
                show(
                    f"{stage}: local -j2 vs ray 1 node x 2 CPU",
                    files=n,
                    local_s=best["local"],
                    ray_s=best["ray"],
                    ray_overhead=f"{100 * (best['ray'] / best['local'] - 1):+.0f}%",
                    runs=len(order) // 2,
                )
    if "nodes" in only:
        timings = {}
        for nodes in (1, 2):
            with LocalRayCluster(nodes=nodes, cpus_per_node=1, env=env) as cluster:
                timings[nodes] = run_driver(
                    stage="convert",
                    executor="ray",
                    address=cluster.address,
                    out=work / f"convert-{nodes}n",
                    **{"in": raw},
                )
        show(
            "convert: ray 2 nodes vs 1 (1 CPU each)",
            files=n_files,
            one_node_s=timings[1]["s"],
            two_nodes_s=timings[2]["s"],
            speed_up=round(timings[1]["s"] / timings[2]["s"], 2),
        )
    if "noop" in only:
        sizes = (2000, 20000)
        with LocalRayCluster(nodes=1, cpus_per_node=2, env=env) as cluster:
            for n in sizes:
                src = noop_manifest(work / f"noop-{n}", n)
                for name, job in (
                    ("local -j2", {"executor": "local", "jobs": 2}),
                    ("ray", {"executor": "ray", "address": cluster.address}),
                    (
                        "ray batch 100",
                        {"executor": "ray", "address": cluster.address, "batch_size": 100},
                    ),
                ):
                    r = run_driver(stage="noop", out=work / f"noop-{n}-out", **{"in": src}, **job)
                    if r["items"] != n:
                        raise SystemExit(f"bench_ray: noop {name}: {r['items']} of {n} items ok")
                    show(
                        f"noop {n} items: {name}",
                        s=r["s"],
                        items_per_s=round(n / r["s"]),
                        driver_peak_mb=r["driver_peak_mb"],
                    )
    meta = {
        "date": dt.date.today().isoformat(),
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, {platform.python_version()}",
        "rows": rows,
    }
    (OUT / "ray-results.json").write_text(json.dumps(meta, indent=2) + "\n")
    print(f"\nbench_ray: results in {OUT / 'ray-results.json'}")


if __name__ == "__main__":
    main()
