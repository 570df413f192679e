"""quality --dnsmos-hop: agreement with the reference hop (1 s) and speed, on the test clips.

Scores every clip at each hop with the same DnsmosEngine (one thread), alternating hops clip by
clip so that a shared machine's load falls on all of them alike, and prints per hop: windows,
CPU seconds, x real time, and mean / 95th percentile |dOVRL| (also SIG, BAK) against hop 1.

Clips: the LibriSpeech test-other and train-clean-100 utterances of ../shared (5-35 s, most
10-15 s), musanmix (74.5 s) and 60-second joins of train-clean-100 utterances (long clips are
where a hop matters: a clip under 10 s has one window whatever the hop).

Usage: python scripts/bench_dnsmos_hop.py [--hops 1,3,9.01] [--limit N]
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

import numpy as np
import soundfile as sf

from audioprep.engines.quality.dnsmos import DnsmosEngine

SHARED = Path(os.environ.get("AUDIOPREP_SHARED", Path(__file__).resolve().parents[2] / "shared"))


def clips(limit: int, joins: int) -> list[tuple[str, np.ndarray]]:
    data = SHARED / "data"
    out = []
    train = sorted((data / "librispeech-train-clean-100").glob("*.flac"))
    for f in sorted((data / "librispeech-test-other").glob("*/*.flac"))[:limit] + train[:limit]:
        out.append((f.stem, sf.read(str(f), dtype="float32")[0]))
    out.append(("musanmix", sf.read(str(data / "musan-mix" / "musanmix.wav"), dtype="float32")[0]))
    joined = np.concatenate([sf.read(str(f), dtype="float32")[0] for f in train[: 5 * joins]])
    for i in range(0, len(joined) - 60 * 16000, 60 * 16000):
        out.append((f"join{i // (60 * 16000)}", joined[i : i + 60 * 16000]))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hops", default="1,3,9.01")
    parser.add_argument("--limit", type=int, default=10, help="clips from each LibriSpeech set")
    parser.add_argument("--joins", type=int, default=3, help="60-second joined clips")
    args = parser.parse_args()
    hops = [float(h) for h in args.hops.split(",")]
    engine = DnsmosEngine(threads=1)
    data = clips(args.limit, args.joins)
    cpu = dict.fromkeys(hops, 0.0)
    scores: dict[float, list[dict]] = {h: [] for h in hops}
    for k, (name, x) in enumerate(data):
        order = hops[k % len(hops) :] + hops[: k % len(hops)]  # rotate who goes first
        for h in order:
            t = time.process_time()
            scores[h].append(engine.score(x, hop=h))
            cpu[h] += time.process_time() - t
        print(f"{name}: " + " ".join(f"{scores[h][-1]['ovrl']:.3f}" for h in hops), flush=True)
    seconds = sum(len(x) for _, x in data) / 16000
    long_idx = [i for i, (_, x) in enumerate(data) if len(x) >= 30 * 16000]
    print(f"{len(data)} clips, {seconds:.0f} s of audio ({len(long_idx)} clips of 30 s or more)")
    print(
        "| hop (s) | windows | CPU s | x real time (1 thread) | mean abs dOVRL | p95 abs dOVRL "
        "| p95 abs dSIG | p95 abs dBAK | p95 abs dOVRL, clips >= 30 s |"
    )
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    ref = scores[hops[0]]
    for h in hops:
        d = {
            k: np.array([abs(a[k] - b[k]) for a, b in zip(scores[h], ref, strict=True)])
            for k in ("ovrl", "sig", "bak")
        }
        long_d = d["ovrl"][long_idx] if long_idx else np.zeros(1)
        print(
            f"| {h:g} | {sum(s['windows'] for s in scores[h])} | {cpu[h]:.1f} | "
            f"{seconds / cpu[h]:.0f} | {d['ovrl'].mean():.3f} | "
            f"{np.percentile(d['ovrl'], 95):.3f} | "
            f"{np.percentile(d['sig'], 95):.3f} | {np.percentile(d['bak'], 95):.3f} | "
            f"{np.percentile(long_d, 95):.3f} |"
        )


if __name__ == "__main__":
    main()
