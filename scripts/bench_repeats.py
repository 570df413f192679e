"""Bench of dedupe and repeats: items per second and peak memory of dedupe at 500 and 2,000
items (how the time grows), and repeats in x real time on one group of episodes.

The dedupe corpus is the 60 LibriSpeech utterances of ../shared repeated with alterations
(gain, a cut at either end, 8 kHz and back, two utterances joined), written as 16 kHz FLAC
with their manifest (no ingest: only dedupe is timed). Each stage runs as a separate process
(the library's run_stage) measured by scripts/bench.py's
sampler (peak RSS of the process tree). A second run on the same OUT_DIR resumes every
measurement, so it times the decision (index, search, keep rules) alone.

Usage: python scripts/bench_repeats.py [--sizes 500,2000] [--jobs 2] [--episodes 12]
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import shutil
import sys
from pathlib import Path

import numpy as np
import soundfile as sf

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench import OUT, SHARED, measure_once  # noqa: E402

SR = 16000
WORK = OUT / "repeats"


def _utterances() -> list[np.ndarray]:
    files = sorted((SHARED / "data" / "librispeech-test-other").glob("*/*.flac"))
    return [sf.read(str(f), dtype="float32")[0] for f in files]


def _altered(utts: list[np.ndarray], i: int, rng: np.random.Generator) -> np.ndarray:
    from scipy.signal import resample_poly

    x = utts[i % len(utts)]
    kind = (i // len(utts)) % 5
    if kind == 1:
        x = x * rng.uniform(0.3, 1.0)
    elif kind == 2:
        a, b = int(rng.uniform(0, 1.5) * SR), int(rng.uniform(0, 1.0) * SR)
        x = x[a : len(x) - b]
    elif kind == 3:
        x = resample_poly(resample_poly(x, 1, 2), 2, 1)
    elif kind == 4:
        x = np.concatenate([x, utts[(i * 7 + 3) % len(utts)]])
    return np.clip(x, -1, 1)


def build_dedupe_corpus(n: int) -> Path:
    folder = WORK / f"dedupe-{n}"
    if (folder / "manifest.jsonl").is_file():
        return folder
    shutil.rmtree(folder, ignore_errors=True)
    (folder / "audio").mkdir(parents=True)
    rng = np.random.default_rng(n)
    utts = _utterances()
    lines = []
    for i in range(n):
        x = _altered(utts, i, rng)
        name = f"item{i:05d}.flac"
        sf.write(str(folder / "audio" / name), x, SR)
        lines.append(
            json.dumps(
                {
                    "id": f"item{i:05d}",
                    "audio": f"audio/{name}",
                    "duration": round(len(x) / SR, 6),
                    "sample_rate": SR,
                    "channels": 1,
                    "codec": "flac",
                }
            )
        )
    (folder / "manifest.jsonl").write_text("\n".join(lines) + "\n")
    return folder


def build_episodes(n: int) -> Path:
    """``n`` episodes of one show: a jingle, three utterances, an ad in half, an outro."""
    folder = WORK / f"episodes-{n}"
    if (folder / "manifest.jsonl").is_file():
        return folder
    shutil.rmtree(folder, ignore_errors=True)
    (folder / "audio").mkdir(parents=True)
    musan, _ = sf.read(str(SHARED / "data" / "musan-mix" / "musanmix.wav"), dtype="float32")
    jingle, outro = musan[: 6 * SR], musan[12 * SR : 17 * SR]
    utts = _utterances()
    ad = utts[-1][: 8 * SR]
    lines = []
    for i in range(n):
        body = [utts[(3 * i + k) % (len(utts) - 1)] for k in range(3)]
        parts = [jingle * (0.5 + 0.05 * (i % 10)), body[0], *([ad] if i % 2 else []), *body[1:]]
        x = np.concatenate([*parts, outro])
        name = f"ep{i:03d}.flac"
        sf.write(str(folder / "audio" / name), x, SR)
        lines.append(
            json.dumps(
                {
                    "id": f"ep{i:03d}",
                    "audio": f"audio/{name}",
                    "duration": round(len(x) / SR, 6),
                    "sample_rate": SR,
                    "channels": 1,
                    "codec": "flac",
                    "source": {"author": "show"},
                }
            )
        )
    (folder / "manifest.jsonl").write_text("\n".join(lines) + "\n")
    return folder


def _run(stage: str, in_dir: Path, out_dir: Path, jobs: int, overwrite: bool):
    """Wall time, peak tree RSS and CPU seconds (user + system of the whole tree: steadier than
    wall time on a shared machine) of one run in a fresh process."""
    import resource

    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    code = (
        "import sys; from audioprep.run.runner import run_stage; "
        f"from audioprep.stages.{stage} import {stage.capitalize()}Stage as S; "
        f"run_stage(S(), {str(out_dir)!r}, in_dir={str(in_dir)!r}, jobs={jobs}, "
        f"progress=False, overwrite={overwrite})"
    )
    m = measure_once([sys.executable, "-c", code])
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    m.cpu = round(after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime, 2)
    return m


def _seconds(folder: Path) -> float:
    with open(folder / "manifest.jsonl") as fh:
        return sum(json.loads(line)["duration"] for line in fh if line.strip())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="500,2000")
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--episodes", type=int, default=12)
    args = parser.parse_args()
    rows = []
    for n in [int(s) for s in args.sizes.split(",") if s]:
        corpus = build_dedupe_corpus(n)
        out = WORK / f"dedupe-{n}-out"
        full = _run("dedupe", corpus, out, args.jobs, True)
        decide = _run("dedupe", corpus, out, 1, False)  # measurements resumed: decision only
        rejected = len((out / "rejected.jsonl").read_text().splitlines())
        rows.append(
            {
                "stage": "dedupe",
                "items": n,
                "audio_s": round(_seconds(corpus), 1),
                "s": round(full.seconds, 2),
                "items_per_s": round(n / full.seconds, 1),
                "peak_mb": round(full.peak_mb),
                "cpu_s": full.cpu,
                "items_per_cpu_s": round(n / full.cpu, 1),
                "decide_s": round(decide.seconds, 2),
                "decide_cpu_s": decide.cpu,
                "decide_peak_mb": round(decide.peak_mb),
                "rejected": rejected,
            }
        )
        print(json.dumps(rows[-1]), flush=True)
    if args.episodes:
        eps = build_episodes(args.episodes)
        out = WORK / "repeats-out"
        m = _run("repeats", eps, out, args.jobs, True)
        d = _run("repeats", eps, out, 1, False)
        secs = _seconds(eps)
        decision = json.loads((out / "decision.json").read_text())
        rows.append(
            {
                "stage": "repeats",
                "items": args.episodes,
                "audio_s": round(secs, 1),
                "s": round(m.seconds, 2),
                "x_rt": round(secs / m.seconds, 1),
                "cpu_s": m.cpu,
                "x_rt_per_cpu": round(secs / m.cpu, 1),
                "peak_mb": round(m.peak_mb),
                "decide_s": round(d.seconds, 2),
                "decide_cpu_s": d.cpu,
                "segments": [s["items"] for s in decision["segments"]],
            }
        )
        print(json.dumps(rows[-1]), flush=True)
    meta = {
        "date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="minutes"),
        "machine": f"{platform.machine()}, {os.cpu_count()} cores (shared), "
        f"{platform.python_version()}",
        "jobs": args.jobs,
        "rows": rows,
    }
    (WORK / "results.json").write_text(json.dumps(meta, indent=2) + "\n")
    print(f"bench: results in {WORK / 'results.json'}")


if __name__ == "__main__":
    main()
