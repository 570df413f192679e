"""``audioprep doctor``: per engine, which devices it can use here, and why not.

The rows come from the engine registry (:mod:`audioprep.engines.base`): one per engine and
device it declares, whatever its family, so an engine added later is reported without a line
here. Each engine's ``runtime`` (TensorFlow, torch, CTranslate2, onnxruntime, ...) is probed
once, in its own short-lived Python process (the libraries are imported there, not here), with
a time limit, so one broken install cannot hide the others.

>>> rows = [Check("speaker", "resemblyzer", "cuda", False, "torch is a CPU-only build")]
>>> print(render(rows))
speaker  resemblyzer  cuda  no   torch is a CPU-only build
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from audioprep.engines.base import EngineInfo


@dataclasses.dataclass(frozen=True)
class Check:
    """One line of the report: can ``engine`` (of family ``stage``) run on ``device``, and why
    (not)."""

    stage: str  # the engine's family ("(all)" for the executors)
    engine: str
    device: str
    ok: bool
    why: str


_TORCH = """
import json
out = {}
try:
    import torch
except Exception as exc:
    out["error"] = f"torch is not installed ({type(exc).__name__})"
else:
    out["version"] = torch.__version__
    out["cuda_build"] = torch.version.cuda
    out["gpus"] = [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())] \
        if torch.cuda.is_available() else []
print(json.dumps(out))
"""

_TF = """
import json, os
os.environ["TF_CPP_MIN_LOG_LEVEL"] = "3"
out = {}
try:
    import tensorflow as tf
except Exception as exc:
    out["error"] = f"TensorFlow is not installed ({type(exc).__name__})"
else:
    out["version"] = tf.__version__
    out["cuda_build"] = bool(tf.test.is_built_with_cuda())
    out["gpus"] = [d.name for d in tf.config.list_physical_devices("GPU")]
print(json.dumps(out))
"""

_CT2 = """
import json
out = {}
try:
    import ctranslate2
except Exception as exc:
    out["error"] = f"CTranslate2 is not installed ({type(exc).__name__})"
else:
    out["version"] = ctranslate2.__version__
    out["cuda_build"] = True  # the PyPI wheels for Linux carry CUDA support
    n = ctranslate2.get_cuda_device_count()
    out["gpus"] = [f"{n} CUDA device(s)"] if n else []
print(json.dumps(out))
"""

_ORT = """
import json
out = {}
try:
    import onnxruntime as ort
except Exception as exc:
    out["error"] = f"onnxruntime is not installed ({type(exc).__name__})"
else:
    out["version"] = ort.__version__
    out["cuda_build"] = "CUDAExecutionProvider" in ort.get_available_providers()
    out["gpus"] = []
    out["gpus_from_driver"] = True  # onnxruntime cannot list GPUs: nvidia-smi's count
print(json.dumps(out))
"""


def _import_probe(module: str) -> str:
    """Probe code for a runtime with no GPU support to test: can it be imported, which version."""
    return f"""
import json, importlib, importlib.metadata
out = {{}}
try:
    importlib.import_module({module!r})
except Exception as exc:
    out["error"] = f"{module} is not installed ({{type(exc).__name__}})"
else:
    try:
        out["version"] = importlib.metadata.version({module!r})
    except Exception:
        out["version"] = "?"
    out["cuda_build"] = False
    out["gpus"] = []
print(json.dumps(out))
"""


@dataclasses.dataclass(frozen=True)
class Runtime:
    """How to probe one runtime: in which Python, with which code, and how to get CUDA."""

    label: str
    code: str
    fix: str
    python: str | None = None  # None: this Python


def runtimes(spleeter_python: str) -> dict[str, Runtime]:
    """The runtimes engines declare (``Engine.runtime``); any other is probed by import."""
    return {
        "tensorflow": Runtime("TensorFlow", _TF, "run `make setup-gpu` (tensorflow[and-cuda])"),
        "torch": Runtime("torch", _TORCH, "run `make setup-gpu` (torch with CUDA)"),
        "spleeter": Runtime(
            "TensorFlow (Spleeter's venv)",
            _TF,
            "run `make setup-gpu` (GPU TensorFlow 2.12.1 and CUDA 11.8 libraries in "
            ".spleeter-venv)",
            python=spleeter_python,
        ),
        "ctranslate2": Runtime(
            "CTranslate2", _CT2, "install the CUDA 12 libraries CTranslate2 needs"
        ),
        "onnxruntime": Runtime("onnxruntime", _ORT, "install onnxruntime-gpu"),
    }


def _probe(python: str, code: str, timeout: float = 120.0) -> dict:
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    try:
        proc = subprocess.run(
            [python, "-c", code], capture_output=True, text=True, timeout=timeout, env=env
        )
    except FileNotFoundError:
        return {"error": f"{python} does not exist"}
    except subprocess.TimeoutExpired:
        return {"error": f"the probe did not answer within {timeout:.0f} s"}
    lines = proc.stdout.strip().splitlines()
    if proc.returncode != 0 or not lines:
        last = (proc.stderr.strip().splitlines() or ["no output"])[-1]
        return {"error": f"the probe failed: {last}"}
    return json.loads(lines[-1])


def nvidia_gpus() -> list[str]:
    """GPU names ``nvidia-smi`` lists; empty when there is none (or no driver)."""
    if not shutil.which("nvidia-smi"):
        return []
    try:
        proc = subprocess.run(
            ["nvidia-smi", "--query-gpu=name", "--format=csv,noheader"],
            capture_output=True,
            text=True,
            timeout=20,
        )
    except (OSError, subprocess.TimeoutExpired):
        return []
    return [line.strip() for line in proc.stdout.splitlines() if line.strip()]


def _cuda_line(info: dict, lib: str, gpus: list[str], fix: str) -> tuple[bool, str]:
    if "error" in info:
        return False, info["error"]
    if info.get("gpus_from_driver") and info.get("cuda_build") and gpus:
        return True, f"{lib} {info['version']} has CUDA; nvidia-smi lists {', '.join(gpus)}"
    if info.get("gpus"):
        return True, f"{lib} {info['version']} sees {', '.join(info['gpus'])}"
    if not info.get("cuda_build"):
        return False, f"{lib} {info['version']} is a CPU-only build; {fix}"
    if not gpus:
        return False, f"{lib} {info['version']} is built with CUDA but this machine has no GPU"
    return False, f"{lib} {info['version']} sees no GPU though nvidia-smi lists {gpus[0]}"


def collect(
    spleeter_python: str | None = None, engines: list[EngineInfo] | None = None
) -> list[Check]:
    """Probe every registered engine (or ``engines``); one :class:`Check` per engine and
    device it declares, and one for the Ray executor."""
    from concurrent.futures import ThreadPoolExecutor

    from audioprep.engines.base import available, engine_class

    spl_py = spleeter_python or os.environ.get(
        "AUDIOPREP_SPLEETER_PYTHON", str(Path(".spleeter-venv/bin/python").absolute())
    )
    known = runtimes(spl_py)
    found = []
    for e in available() if engines is None else engines:
        devices, runtime = e.attr("devices"), e.attr("runtime")
        if devices is None or runtime is None:  # not spelled out in its class: import it
            cls = engine_class(e.family, e.name)
            devices, runtime = cls.devices, cls.runtime
        found.append((e, tuple(devices), str(runtime)))
    wanted = sorted({runtime for _, _, runtime in found} - {"numpy"})
    probes = {
        r: known.get(r) or Runtime(r, _import_probe(r), f"no CUDA probe for {r}") for r in wanted
    }
    with ThreadPoolExecutor(4) as pool:  # the probes are processes: run them side by side
        gpus_f = pool.submit(nvidia_gpus)
        futures = {
            r: pool.submit(_probe, rt.python or sys.executable, rt.code)
            for r, rt in probes.items()
            if rt.python is None or Path(rt.python).exists()
        }
    gpus = gpus_f.result()
    results = {r: f.result() for r, f in futures.items()}
    for r, rt in probes.items():
        if r not in results:
            results[r] = {
                "error": f"{rt.label}'s Python {rt.python} is missing; run `make spleeter`"
            }
    rows: list[Check] = []
    for e, devices, runtime in found:
        if runtime == "numpy":
            import importlib.metadata as md

            for device in devices:
                ok = device == "cpu"
                why = f"numpy {md.version('numpy')}" if ok else "numpy runs on the CPU only"
                rows.append(Check(e.family, e.name, device, ok, why))
            continue
        info, rt = results[runtime], probes[runtime]
        for device in devices:
            if device == "cpu":
                ok = "error" not in info
                why = info.get("error", f"{rt.label} {info.get('version')}")
            elif device == "cuda":
                ok, why = _cuda_line(info, rt.label, gpus, rt.fix)
            else:
                ok, why = False, f"doctor has no probe for device {device!r}"
            rows.append(Check(e.family, e.name, device, ok, why))
    try:
        import importlib.metadata as md

        ray_version = md.version("ray")
        rows.append(Check("(all)", "ray-executor", "cluster", True, f"ray {ray_version}"))
    except Exception:  # noqa: BLE001 - not installed
        rows.append(
            Check(
                "(all)",
                "ray-executor",
                "cluster",
                False,
                "ray is not installed: `pip install 'audioprep[ray]'`",
            )
        )
    return rows


def render(rows: list[Check]) -> str:
    """The report as aligned text, one line per check."""
    widths = [max(len(getattr(r, f)) for r in rows) for f in ("stage", "engine", "device")]
    return "\n".join(
        f"{r.stage:<{widths[0]}}  {r.engine:<{widths[1]}}  {r.device:<{widths[2]}}  "
        f"{'yes' if r.ok else 'no ':<3}  {r.why}"
        for r in rows
    )


def main() -> int:
    """Print the report; exit 0 (the report itself says what cannot run)."""
    gpus = nvidia_gpus()
    print(f"GPUs (nvidia-smi): {', '.join(gpus) if gpus else 'none'}")
    print(render(collect()))
    return 0
