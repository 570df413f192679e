"""The Ray executor on a real two-node Ray cluster started on 127.0.0.1 by the tests.

Nodes are `ray start --block` child processes stopped by their process group (never `ray stop`).
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import sys
import threading
import time
from pathlib import Path

import pytest

from audioprep.core.stage import SourceStage
from audioprep.errors import AudioprepError
from audioprep.run.executors.base import WorkerSpec
from audioprep.run.executors.ray import ITEM_LOG, PROBE_FILE, RayExecutor, access_problem
from audioprep.run.runner import Runner, run_stage
from audioprep.testing import LIBRI, MODELS, REPO, read_jsonl, require_shared
from audioprep.testing.ray_cluster import LocalRayCluster, free_port


class SleepStage(SourceStage):
    """A source stage doing no audio work: ``n`` items, each sleeping ``sleep`` seconds."""

    name = "sleep"

    @dataclasses.dataclass(frozen=True)
    class Params:
        n: int = 20
        sleep: float = 0.0

    def inputs(self):
        for i in range(self.params.n):
            yield {"id": f"item-{i:05d}"}

    def process(self, record, ctx):
        time.sleep(self.params.sleep)
        return [{**record, "duration": 1.0}]


def _cluster_env() -> dict[str, str]:
    """The nodes' workers import audioprep and this test module from these paths."""
    paths = [str(REPO / "src"), str(Path(__file__).parent), os.environ.get("PYTHONPATH", "")]
    return {"PYTHONPATH": os.pathsep.join(p for p in paths if p)}


@pytest.fixture(scope="module")
def cluster():
    ray = pytest.importorskip("ray", reason="Ray is not installed (pip install 'audioprep[ray]')")
    with LocalRayCluster(nodes=2, cpus_per_node=1, env=_cluster_env()) as c:
        yield c
    if ray.is_initialized():
        ray.shutdown()


def _items_by_node(out: Path) -> dict[str, list[str]]:
    nodes: dict[str, list[str]] = {}
    for line in read_jsonl(out / ITEM_LOG):
        nodes.setdefault(line["node"], []).append(line["id"])
    return nodes


# -- errors before anything is written (no cluster needed) --------------------------------------
def test_an_address_where_nothing_answers_fails_before_out_dir(tmp_path: Path) -> None:
    out = tmp_path / "out"
    address = f"127.0.0.1:{free_port()}"
    with pytest.raises(AudioprepError, match=f"no Ray cluster answers at {address}") as err:
        run_stage(SleepStage(), out, executor=RayExecutor(address), progress=False)
    assert err.value.exit_code == 3 and "\n" not in str(err.value)
    assert not out.exists()


def test_the_cli_says_one_sentence_and_exits_3_before_out_dir(tmp_path: Path) -> None:
    from audioprep.testing import cli, make_manifest_dir, sine_file

    src = make_manifest_dir(tmp_path / "in", [sine_file(tmp_path / "a.wav")])
    out = tmp_path / "out"
    address = f"127.0.0.1:{free_port()}"
    proc = cli("convert", src, out, "--executor", "ray", "--ray-address", address, check=False)
    assert proc.returncode == 3, proc.stderr
    assert proc.stderr.strip() == (
        f"audioprep convert: error: no Ray cluster answers at {address}; start one there "
        "(`ray start --head`, see docs/cluster.md) or fix --ray-address / "
        "$AUDIOPREP_RAY_ADDRESS."
    )
    assert not out.exists()
    env = {**os.environ, "AUDIOPREP_RAY_ADDRESS": address}
    proc = cli("convert", src, out, "--executor", "ray", check=False, env=env)
    assert proc.returncode == 3 and address in proc.stderr and not out.exists()


def test_chains_and_makefiles_take_the_run_options(tmp_path: Path) -> None:
    from audioprep.chains.plan import load_chain, plan_argv
    from audioprep.testing import cli, make_manifest_dir, sine_file

    src = make_manifest_dir(tmp_path / "in", [sine_file(tmp_path / "a.wav")])
    address = f"127.0.0.1:{free_port()}"
    config = tmp_path / "chain.yaml"
    config.write_text(
        f"input: {src}\nexecutor: ray\nray-address: '{address}'\nbatch-size: 4\n"
        "stages:\n  - convert: {sample-rate: 16000}\n  - trim: {head: 0.1, executor: local}\n"
    )
    argvs = [argv for _, argv in plan_argv(load_chain(config), tmp_path / "w")]
    assert argvs[0][-6:] == ["--executor", "ray", "--ray-address", address, "--batch-size", "4"]
    assert "--executor" not in argvs[1] and argvs[1][-2:] == ["--batch-size", "4"]
    makefile = cli("makefile", config).stdout
    assert f"--executor ray --ray-address {address} --batch-size 4" in makefile
    proc = cli("run", config, "--workdir", tmp_path / "w", check=False)
    assert proc.returncode == 3 and f"no Ray cluster answers at {address}" in proc.stderr
    assert not (tmp_path / "w" / "01-convert").exists()
    proc = cli("run", config, "--workdir", tmp_path / "w", "--executor", "local", check=False)
    assert proc.returncode == 0, proc.stderr  # the command line overrides the config's top level
    info = json.loads((tmp_path / "w" / "01-convert" / "stage.json").read_text())
    assert "executor_info" not in info and info["executor"] != "RayExecutor"
    proc = cli("run", config, "--workdir", tmp_path / "w2", "--ray-address", "x:1", check=False)
    assert proc.returncode == 3 and "x:1" in proc.stderr


def test_the_address_comes_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AUDIOPREP_RAY_ADDRESS", "127.0.0.2:6379")
    assert RayExecutor().address == "127.0.0.2:6379"
    assert RayExecutor("127.0.0.1:1").address == "127.0.0.1:1"


def test_without_ray_installed_one_sentence_before_out_dir(tmp_path: Path) -> None:
    import subprocess

    out = tmp_path / "out"
    code = (
        "import sys; sys.modules['ray'] = None\n"  # `import ray` now raises ImportError
        "sys.path.insert(0, sys.argv[2])\n"
        "from test_ray import SleepStage\n"
        "from audioprep.errors import AudioprepError\n"
        "from audioprep.run.executors.ray import RayExecutor\n"
        "from audioprep.run.runner import run_stage\n"
        "try:\n"
        "    run_stage(SleepStage(), sys.argv[1], executor=RayExecutor(), progress=False)\n"
        "except AudioprepError as exc:\n"
        "    print(exc); sys.exit(exc.exit_code)\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code, str(out), str(Path(__file__).parent)],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 3, proc.stderr
    assert proc.stdout.count("\n") == 1 and "needs Ray, which is not installed" in proc.stdout
    assert not out.exists()


def test_access_problem_names_the_directory_a_worker_cannot_see(tmp_path: Path) -> None:
    out, inp = tmp_path / "out", tmp_path / "in"
    out.mkdir()
    (inp / "audio").mkdir(parents=True)
    (inp / "manifest.jsonl").write_text('{"id": "a", "audio": "audio/a.wav"}\n')
    (out / PROBE_FILE).write_text("abc\n")
    spec = WorkerSpec(stage_path="x:Y", params=None, in_dir=str(inp), out_dir=str(out))
    size = (inp / "manifest.jsonl").stat().st_size
    probe = {"nonce": "abc", "manifest_size": size, "audio": "audio/a.wav"}
    assert "cannot read the input audio 'audio/a.wav'" in access_problem(spec, probe)
    (inp / "audio" / "a.wav").write_bytes(b"RIFF")
    assert access_problem(spec, probe) is None
    assert "does not see the driver's OUT_DIR" in access_problem(spec, {**probe, "nonce": "zz"})
    assert "does not see the driver's IN_DIR" in access_problem(
        spec, {**probe, "manifest_size": size + 1}
    )


@pytest.mark.slow
def test_doctor_says_per_engine_which_devices_and_why_not() -> None:
    from audioprep.testing import cli

    out = cli("doctor").stdout
    assert out.startswith("GPUs (nvidia-smi): ")
    lines = out.splitlines()[1:]
    engines = {tuple(line.split()[:3]) for line in lines}
    for key in (
        ("segment", "ina", "cpu"),
        ("segment", "ina", "cuda"),
        ("segment", "silero", "cpu"),
        ("speaker", "resemblyzer", "cuda"),
        ("separate", "spleeter", "cuda"),
        ("asr", "whisper", "cuda"),
        ("asr", "vosk", "cpu"),
        ("quality", "dnsmos", "cuda"),
    ):
        assert key in engines, out
    for line in lines:
        assert line.split()[3] in ("yes", "no") and len(line.split()) > 4, line  # a reason


# -- a real two-node cluster ---------------------------------------------------------------------
@pytest.mark.slow
def test_items_run_on_both_nodes_and_equal_the_local_run(cluster, tmp_path: Path) -> None:
    stage = SleepStage(SleepStage.Params(n=30, sleep=0.3))
    local = run_stage(stage, tmp_path / "local", jobs=1, progress=False)
    executor = RayExecutor(cluster.address)
    summary = run_stage(stage, tmp_path / "ray", executor=executor, progress=False)
    assert summary.items_ok == local.items_ok == 30
    manifest = (tmp_path / "ray" / "manifest.jsonl").read_bytes()
    assert manifest == (tmp_path / "local" / "manifest.jsonl").read_bytes()
    nodes = _items_by_node(tmp_path / "ray")
    assert len(nodes) == 2, nodes
    ids = [i for v in nodes.values() for i in v]
    assert sorted(ids) == sorted(set(ids)) and len(ids) == 30
    info = json.loads((tmp_path / "ray" / "stage.json").read_text())["executor_info"]
    assert info["nodes"] == 2 and sum(info["items_per_node"].values()) == 30
    assert info["actors"] == 2 and info["actor_resources"] == {"num_cpus": 1.0, "num_gpus": 0.0}
    assert not (tmp_path / "ray" / PROBE_FILE).exists()


@pytest.mark.slow
def test_overwrite_after_a_ray_run_leaves_no_line_of_it_in_the_item_log(tmp_path: Path) -> None:
    pytest.importorskip("ray", reason="Ray is not installed (pip install 'audioprep[ray]')")
    with LocalRayCluster(nodes=1, cpus_per_node=2, env=_cluster_env()) as one_node:
        _overwrite_after_ray(RayExecutor(one_node.address), tmp_path / "out")


def _overwrite_after_ray(executor: RayExecutor, out: Path) -> None:
    run_stage(SleepStage(SleepStage.Params(n=6)), out, executor=executor, progress=False)
    assert len(read_jsonl(out / ITEM_LOG)) == 6
    again = SleepStage(SleepStage.Params(n=2, sleep=0.01))
    run_stage(again, out, executor=executor, overwrite=True, progress=False)
    assert sorted(line["id"] for line in read_jsonl(out / ITEM_LOG)) == ["item-00000", "item-00001"]
    run_stage(SleepStage(SleepStage.Params(n=3)), out, jobs=1, overwrite=True, progress=False)
    assert not (out / ITEM_LOG).exists()  # a local run after it keeps no Ray log either


@pytest.mark.slow
def test_a_rerun_resumes_and_batches_equal_single_items(cluster, tmp_path: Path) -> None:
    stage = SleepStage(SleepStage.Params(n=25))
    run_stage(stage, tmp_path / "one", executor=RayExecutor(cluster.address), progress=False)
    batched = RayExecutor(cluster.address, batch_size=4)
    run_stage(stage, tmp_path / "four", executor=batched, progress=False)
    one = (tmp_path / "one" / "manifest.jsonl").read_bytes()
    assert (tmp_path / "four" / "manifest.jsonl").read_bytes() == one
    again = run_stage(stage, tmp_path / "four", executor=batched, progress=False)
    assert again.items_resumed == 25 and again.items_failed == 0


SHORT = {
    "convert": {"sample_rate": 16000, "channels": 1},
    "slice": {"min_duration": 1.0, "max_duration": 6.0},
}


@pytest.mark.slow
def test_a_chain_through_ray_is_byte_identical_to_local(cluster, tmp_path: Path) -> None:
    """convert -> segment -> slice -> speaker-filter, local executor against the Ray cluster."""
    require_shared()
    from audioprep.stages.convert import ConvertStage
    from audioprep.stages.ingest import IngestStage
    from audioprep.stages.segment import SegmentStage
    from audioprep.stages.slice import SliceStage
    from audioprep.stages.speaker_filter import SpeakerFilterStage

    files = tmp_path / "files"
    files.mkdir()
    for spk in ("1688", "1998"):
        for f in sorted((LIBRI / spk).glob("*.flac"))[3:7]:
            shutil.copy(f, files / f"{spk}-{f.name}")
    refs = [str(f) for f in sorted((LIBRI / "1688").glob("*.flac"))[:3]]
    ingest = tmp_path / "00-ingest"
    run_stage(IngestStage(IngestStage.Params(sources=(str(files),))), ingest, progress=False)
    chain = [
        ConvertStage(ConvertStage.Params(**SHORT["convert"])),
        SegmentStage(SegmentStage.Params(model_dir=str(MODELS))),
        SliceStage(SliceStage.Params(**SHORT["slice"])),
        SpeakerFilterStage(SpeakerFilterStage.Params(references=tuple(refs))),
    ]
    used_nodes: set[str] = set()
    for kind in ("local", "ray"):
        prev = ingest
        for n, stage in enumerate(chain, start=1):
            out = tmp_path / kind / f"{n:02d}-{stage.name}"
            executor = RayExecutor(cluster.address) if kind == "ray" else None
            summary = Runner(stage, out, in_dir=prev, jobs=1, progress=False, executor=executor)
            assert summary.run().items_failed == 0, (kind, stage.name)
            if kind == "ray":
                used_nodes |= set(_items_by_node(out))
            prev = out
    for n, stage in enumerate(chain, start=1):
        name = f"{n:02d}-{stage.name}"
        for fname in ("manifest.jsonl", "rejected.jsonl", "errors.jsonl"):
            local = (tmp_path / "local" / name / fname).read_bytes()
            assert (tmp_path / "ray" / name / fname).read_bytes() == local, (name, fname)
    assert read_jsonl(tmp_path / "ray" / "04-speaker-filter" / "manifest.jsonl")
    assert len(used_nodes) == 2


@pytest.mark.slow
def test_a_driver_killed_by_sigkill_resumes(cluster, tmp_path: Path) -> None:
    import signal
    import subprocess

    out = tmp_path / "out"
    code = (
        "import sys; sys.path.insert(0, sys.argv[3])\n"
        "from test_ray import SleepStage\n"
        "from audioprep.run.executors.ray import RayExecutor\n"
        "from audioprep.run.runner import run_stage\n"
        "stage = SleepStage(SleepStage.Params(n=30, sleep=0.3))\n"
        "run_stage(stage, sys.argv[1], executor=RayExecutor(sys.argv[2]), progress=False)\n"
    )
    driver = subprocess.Popen(
        [sys.executable, "-c", code, str(out), cluster.address, str(Path(__file__).parent)]
    )
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and len(read_jsonl(out / ITEM_LOG)) < 5:
        time.sleep(0.1)
    driver.send_signal(signal.SIGKILL)
    driver.wait()
    assert not (out / "manifest.jsonl").exists()
    stage = SleepStage(SleepStage.Params(n=30, sleep=0.3))
    again = run_stage(stage, out, executor=RayExecutor(cluster.address), progress=False)
    assert again.items_resumed >= 4 and again.items_failed == 0
    ids = [r["id"] for r in read_jsonl(out / "manifest.jsonl")]
    assert ids == [f"item-{i:05d}" for i in range(30)]


@pytest.mark.slow
def test_killing_a_node_mid_run_loses_no_item_and_repeats_none(cluster, tmp_path: Path) -> None:
    """Last in this file: it leaves the module's cluster with one node."""
    if True:
        stage = SleepStage(SleepStage.Params(n=40, sleep=0.25))
        out = tmp_path / "out"

        def kill_when_both_nodes_worked() -> None:
            deadline = time.monotonic() + 120
            while time.monotonic() < deadline:
                if len(_items_by_node(out)) == 2:
                    cluster.kill_node(1)
                    return
                time.sleep(0.1)

        killer = threading.Thread(target=kill_when_both_nodes_worked)
        killer.start()
        executor = RayExecutor(cluster.address, max_retries=2, start_timeout=20)
        try:
            summary = run_stage(stage, out, executor=executor, progress=False)
        finally:
            killer.join()
        assert cluster.procs[1].poll() is not None, "node 1 was never killed"
        done = [r["id"] for r in read_jsonl(out / "manifest.jsonl")]
        failed = [r["id"] for r in read_jsonl(out / "errors.jsonl")]
        assert len(done) == len(set(done)) and not set(done) & set(failed)
        assert sorted(done + failed) == [f"item-{i:05d}" for i in range(40)]
        assert summary.items_ok + summary.items_failed == 40
        logged = [line["id"] for line in read_jsonl(out / ITEM_LOG)]
        assert len(logged) == len(set(logged)) == len(done)  # no item was processed twice
        info = json.loads((out / "stage.json").read_text())["executor_info"]
        assert info["actors_died"] >= 1
        again = run_stage(stage, out, executor=RayExecutor(cluster.address), progress=False)
        assert again.items_failed == 0 and again.items_ok == 40  # resumed ones included
        assert len(read_jsonl(out / "manifest.jsonl")) == 40
