"""The client side of Spleeter: starts the worker in Spleeter's own environment, talks to it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from audioprep.engines.base import Settings, Weights
from audioprep.engines.separate.base import SeparatorEngine
from audioprep.errors import AudioprepError

ENV = "AUDIOPREP_SPLEETER_PYTHON"
WORKER = Path(__file__).with_name("spleeter_worker.py")
SR = 44100


def spleeter_python() -> Path:
    """The Python of Spleeter's environment: ``$AUDIOPREP_SPLEETER_PYTHON``, else the
    ``.spleeter-venv`` beside audioprep's own environment (what ``make setup`` creates)."""
    if os.environ.get(ENV):
        return Path(os.environ[ENV])
    return Path(sys.prefix).parent / ".spleeter-venv" / "bin" / "python"


def check_model(model_dir: Path, model: str) -> Path:
    """The model folder, refusing one without a checkpoint (Spleeter would use random weights)."""
    name = model.split(":", 1)[-1]
    folder = model_dir / "spleeter" / name
    if not (folder / "checkpoint").is_file():
        raise AudioprepError(
            f"Spleeter model {model} has no checkpoint in {folder} (an empty or partial folder "
            f"would make Spleeter predict with random weights): put the pretrained {name} files "
            "(checkpoint, model.index, model.data-00000-of-00001) there, or point --model-dir "
            "(or AUDIOPREP_MODEL_DIR) at a folder that has them."
        )
    return folder


SPLEETER_URL = "https://github.com/deezer/spleeter/releases/download/v1.4.0/"
CHECKPOINT = ("checkpoint", "model.index", "model.data-00000-of-00001")


class SpleeterWorker(SeparatorEngine):
    """One Spleeter process, model loaded once, separating 44.1 kHz stereo arrays."""

    name = "spleeter"
    family = "separate"
    devices = ("cpu", "cuda")
    runtime = "spleeter"
    summary = "Spleeter 2.4.2 in its own environment (`make spleeter`): vocals and the rest"
    models = ("2stems", "4stems", "5stems")
    options = ("model_dir", "model")
    sample_rate = SR
    channels = 2

    @classmethod
    def from_settings(cls, settings: Settings) -> SpleeterWorker:
        """The worker for ``model`` (``spleeter:2stems``...) under ``model_dir/spleeter``."""
        if settings.model_dir is None:
            raise ValueError("Spleeter needs a model directory")
        return cls(
            model_dir=settings.model_dir,
            model=settings.option("model", "spleeter:2stems"),
            threads=settings.threads,
            device=settings.device,
        )

    @classmethod
    def check(cls, settings: Settings) -> None:
        """The model's checkpoint and Spleeter's environment are there."""
        super().check(settings)
        model_dir = settings.model_dir
        if model_dir is None:
            raise ValueError("Spleeter needs a model directory")
        model = settings.option("model", "spleeter:2stems")
        check_model(model_dir, model)
        if not spleeter_python().is_file():
            cls(model_dir=model_dir, model=model)  # raises the message

    @classmethod
    def versions(cls) -> dict[str, str]:
        return {"spleeter": "2.4.2 (own environment)"}

    @classmethod
    def weights(cls) -> tuple[Weights, ...]:
        return tuple(
            Weights(
                f"spleeter/{m}",
                CHECKPOINT,
                f"{SPLEETER_URL}{m}.tar.gz",
                used_by=f"separate --engine spleeter --model spleeter:{m}",
            )
            for m in cls.models
        )

    def __init__(
        self,
        *,
        model_dir: Path,
        model: str = "spleeter:2stems",
        python: Path | None = None,
        threads: int = 0,
        device: str = "cpu",
    ) -> None:
        python = python or spleeter_python()
        if not python.is_file():
            raise AudioprepError(
                f"Spleeter's environment is missing (no Python at {python}): create it with "
                f"`make spleeter`, or set {ENV} to the Python of an environment with "
                "spleeter 2.4.2."
            )
        check_model(model_dir, model)
        self._log = tempfile.TemporaryFile()  # noqa: SIM115 - lives as long as the worker
        env = dict(os.environ)
        if threads > 0:
            env["TF_NUM_INTRAOP_THREADS"] = str(threads)
            env["OMP_NUM_THREADS"] = str(threads)
        self.proc = subprocess.Popen(
            [str(python), str(WORKER), str(model_dir / "spleeter"), model, device],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self._log,
            env=env,
        )
        header = self._header()
        if "error" in header:
            raise AudioprepError(f"Spleeter could not load {model}: {header['error']}")
        self.stems: list[str] = header["stems"]

    def _header(self) -> dict[str, Any]:
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        if not line:
            self._log.seek(0)
            tail = self._log.read().decode("utf-8", "replace").strip().splitlines()[-3:]
            raise AudioprepError(f"the Spleeter worker stopped: {' | '.join(tail) or 'no message'}")
        return json.loads(line)

    def separate(self, x: np.ndarray) -> dict[str, np.ndarray]:
        """Stems of ``x`` (shape ``(n, 2)``, float32, 44.1 kHz), each the same shape."""
        assert self.proc.stdin is not None and self.proc.stdout is not None
        x = np.ascontiguousarray(x, dtype="<f4")
        self.proc.stdin.write((json.dumps({"frames": len(x)}) + "\n").encode())
        self.proc.stdin.write(x.tobytes())
        self.proc.stdin.flush()
        header = self._header()
        out = {}
        for stem in header["stems"]:
            data = self.proc.stdout.read(len(x) * 8)
            out[stem] = np.frombuffer(data, dtype="<f4").reshape(len(x), 2)
        return out

    def close(self) -> None:
        if getattr(self, "proc", None) is None:  # __init__ failed before the process started
            return
        if self.proc.poll() is None:
            try:
                assert self.proc.stdin is not None
                self.proc.stdin.write(b"\n")
                self.proc.stdin.close()
                self.proc.wait(timeout=10)
            except (OSError, subprocess.TimeoutExpired):
                self.proc.kill()
