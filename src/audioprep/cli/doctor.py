"""``audioprep doctor``: per engine, which devices it can use here, and why not.

Each engine is probed in its own short-lived Python process (TensorFlow and torch are imported
there, not here), with a time limit, so one broken install cannot hide the others.

>>> rows = [Check("speaker-filter", "resemblyzer", "cuda", False, "torch is a CPU-only build")]
>>> print(render(rows))
speaker-filter  resemblyzer  cuda  no   torch is a CPU-only build
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path


@dataclasses.dataclass(frozen=True)
class Check:
    """One line of the report: can ``engine`` (of ``stage``) run on ``device``, and why (not)."""

    stage: str
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
    if info.get("gpus"):
        return True, f"{lib} {info['version']} sees {', '.join(info['gpus'])}"
    if not info.get("cuda_build"):
        return False, f"{lib} {info['version']} is a CPU-only build; {fix}"
    if not gpus:
        return False, f"{lib} {info['version']} is built with CUDA but this machine has no GPU"
    return False, f"{lib} {info['version']} sees no GPU though nvidia-smi lists {gpus[0]}"


def collect(spleeter_python: str | None = None) -> list[Check]:
    """Probe every engine; one :class:`Check` per engine and device."""
    from concurrent.futures import ThreadPoolExecutor

    spl_py = spleeter_python or os.environ.get(
        "AUDIOPREP_SPLEETER_PYTHON", str(Path(".spleeter-venv/bin/python").absolute())
    )
    with ThreadPoolExecutor(4) as pool:  # the probes are processes: run them side by side
        gpus_f = pool.submit(nvidia_gpus)
        torch_f = pool.submit(_probe, sys.executable, _TORCH)
        tf_f = pool.submit(_probe, sys.executable, _TF)
        spl_f = pool.submit(_probe, spl_py, _TF) if Path(spl_py).exists() else None
    gpus, torch, tf = gpus_f.result(), torch_f.result(), tf_f.result()
    spl = (
        spl_f.result()
        if spl_f is not None
        else {"error": f"Spleeter's Python {spl_py} is missing; run `make spleeter`"}
    )
    rows: list[Check] = []

    def both(stage: str, engine: str, info: dict, lib: str, fix: str) -> None:
        cpu_ok = "error" not in info
        rows.append(
            Check(stage, engine, "cpu", cpu_ok, info.get("error", f"{lib} {info.get('version')}"))
        )
        ok, why = _cuda_line(info, lib, gpus, fix)
        rows.append(Check(stage, engine, "cuda", ok, why))

    both("segment", "ina", tf, "TensorFlow", "run `make setup-gpu` (tensorflow[and-cuda])")
    rows.append(
        Check(
            "segment",
            "silero",
            "cpu",
            "error" not in torch,
            torch.get(
                "error",
                f"torch {torch.get('version')} (silero steps 32 ms at a time: CPU only by design)",
            ),
        )
    )
    both("speaker-filter", "resemblyzer", torch, "torch", "run `make setup-gpu` (torch with CUDA)")
    both(
        "separate",
        "spleeter",
        spl,
        "TensorFlow (Spleeter's venv)",
        "run `make setup-gpu` (GPU TensorFlow 2.12.1 and CUDA 11.8 libraries in .spleeter-venv)",
    )
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
