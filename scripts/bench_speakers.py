"""Time and peak memory of the speakers stage's clustering at 1k, 10k and 100k embeddings.

    python scripts/bench_speakers.py [--sizes 1000,10000,100000] [--voices 300]

Each size runs in a fresh process: synthetic 256-d unit embeddings (``--voices`` voices, a
Zipf-like share of clips each, clips at cosine ~0.9 to their voice, voices ~0.55 apart) are
written to an ``np.memmap`` on disk, then clustered as the stage does (`cluster_corpus`: average
linkage over a sample of 4000, nearest-centroid assignment in blocks of 8192) and given their
confidence. Prints a table: size, seconds, peak RSS (MiB) of the process, purity, voices found.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def one(n: int, voices: int, work: Path) -> dict:
    import numpy as np

    sys.path.insert(0, str(Path(__file__).parents[1] / "src"))
    from audioprep.dsp.speaker_clusters import cluster_corpus
    from audioprep.stages.speakers import CLUSTER_SAMPLE, _confidence

    rng = np.random.default_rng(0)
    # voices share a common direction (Resemblyzer's voices score 0.45-0.70 against each other)
    common = np.abs(rng.normal(size=256))
    common /= np.linalg.norm(common)
    spread = rng.normal(size=(voices, 256))
    spread /= np.linalg.norm(spread, axis=1, keepdims=True)
    centres = common + 0.9 * spread
    centres /= np.linalg.norm(centres, axis=1, keepdims=True)
    share = 1 / np.arange(1, voices + 1) ** 0.8
    share /= share.sum()
    path = work / f"emb-{n}.npy"
    x = np.lib.format.open_memmap(path, mode="w+", dtype=np.float32, shape=(n, 256))
    truth = np.zeros(n, dtype=np.int32)
    for a in range(0, n, 8192):  # written in blocks: the process never holds them all
        b = min(n, a + 8192)
        lab = rng.choice(voices, size=b - a, p=share)
        e = centres[lab] + rng.normal(scale=0.5 / 16, size=(b - a, 256))
        x[a:b] = e / np.linalg.norm(e, axis=1, keepdims=True)
        truth[a:b] = lab
    x.flush()
    del x
    x = np.load(path, mmap_mode="r")
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    t0 = time.perf_counter()
    labels, cents, info = cluster_corpus(x, sample=CLUSTER_SAMPLE)
    sim, margin = _confidence(x, labels, cents)
    seconds = time.perf_counter() - t0
    pure = 0
    for c in range(len(cents)):
        members = truth[labels == c]
        pure += np.bincount(members).max() if len(members) else 0
    return {
        "embeddings": n,
        "seconds": round(seconds, 2),
        "peak_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
        "rss_before_mib": round(before),
        "embeddings_mib_on_disk": round(path.stat().st_size / 2**20, 1),
        "purity": round(pure / n, 4),
        "voices_found": int(info["speakers"]),
        "voices_true": int(len(np.unique(truth))),
        "stop_similarity": info["stop_similarity"],
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="1000,10000,100000")
    ap.add_argument("--voices", type=int, default=300)
    ap.add_argument("--one", type=int, help=argparse.SUPPRESS)
    ap.add_argument("--work", type=Path, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.one:
        print(json.dumps(one(args.one, args.voices, args.work)))
        return
    with tempfile.TemporaryDirectory() as work:
        print("| embeddings | seconds | peak RSS MiB | on disk MiB | purity | voices found/true |")
        print("|---|---|---|---|---|---|")
        for n in (int(s) for s in args.sizes.split(",")):
            out = subprocess.run(
                [sys.executable, __file__, "--one", str(n), "--voices", str(args.voices),
                 "--work", work],  # fmt: skip
                capture_output=True, text=True, check=True,
            ).stdout  # fmt: skip
            r = json.loads(out.strip().splitlines()[-1])
            print(
                f"| {n} | {r['seconds']} | {r['peak_rss_mib']} | {r['embeddings_mib_on_disk']} "
                f"| {r['purity']} | {r['voices_found']}/{r['voices_true']} |"
            )


if __name__ == "__main__":
    main()
