"""The reference DNSMOS on a folder of 16 kHz files: speechmos's own `dnsmos.run` per file
(librosa loading and features, its onnxruntime sessions), for `make bench` to compare against.

Usage: python scripts/raw_dnsmos.py AUDIO_DIR OUT.jsonl
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from speechmos import dnsmos


def main() -> None:
    src, out = Path(sys.argv[1]), Path(sys.argv[2])
    with open(out, "w") as fh:
        for path in sorted(src.iterdir()):
            if path.suffix.lower() in (".wav", ".flac"):
                scores = dnsmos.run(str(path), 16000)
                fh.write(
                    json.dumps({k: float(v) if k != "filename" else v for k, v in scores.items()})
                    + "\n"
                )


if __name__ == "__main__":
    main()
