"""Speech under noise and music: DFN3 (denoise and separate) against Spleeter, one run.

Builds synthetic shows from ../shared: LibriSpeech voices (train-clean-100, two utterances of
one speaker end to end, 16 kHz) under white noise at 5 dB SNR, and under the MUSAN music piece
of musanmix.wav (0-22.5 s, looped) at 0 dB and -6 dB speech-to-music. Each show goes through
`denoise --engine dfn3`, `separate --engine dfn3` and `separate` (Spleeter 2stems) as stages,
one after another, jobs=1. Per method and condition it prints the mean SI-SDR of the kept
speech against the clean speech, its mean DNSMOS OVRL (the mixture's and the clean speech's
beside), and the audio seconds per wall second of the stage run (model loading included).

Example: `AUDIOPREP_SHARED=../shared python scripts/bench_enhance.py --shows 3 --out /tmp/bench`
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np
import soundfile as sf

from audioprep.core.media import decode_chunks
from audioprep.dsp.metrics import si_sdr
from audioprep.engines.quality.dnsmos import DnsmosEngine
from audioprep.run.runner import run_stage
from audioprep.testing import DATA, MUSANMIX, make_manifest_dir, read_jsonl

SR = 16000
TRAIN = DATA / "librispeech-train-clean-100"


def load16(path: Path) -> np.ndarray:
    blocks = decode_chunks(
        path, chunk_frames=SR * 10, sample_rate=SR, channels=1, sample_format="f32"
    )
    return np.concatenate([b[:, 0] for b in blocks]).astype(np.float64)


def mix_at(speech: np.ndarray, bed: np.ndarray, snr_db: float) -> np.ndarray:
    bed = np.resize(bed, len(speech))
    gain = np.sqrt(np.mean(speech**2) / (np.mean(bed**2) * 10 ** (snr_db / 10)))
    out = speech + gain * bed
    return out / max(1.0, np.abs(out).max() / 0.95)


def shows(n: int, rng: np.random.Generator) -> list[np.ndarray]:
    files = sorted(TRAIN.glob("*.flac"))
    picks = rng.choice(len(files), size=2 * n, replace=False)
    return [
        np.concatenate([load16(files[picks[2 * i]]), load16(files[picks[2 * i + 1]])])
        for i in range(n)
    ]


def _cpu() -> float:
    """CPU seconds of this process and its finished children (Spleeter's worker, pools)."""
    t = os.times()
    return t.user + t.system + t.children_user + t.children_system


def stage(name: str):
    if name == "denoise-dfn3":
        from audioprep.stages.denoise import DenoiseStage

        return DenoiseStage(DenoiseStage.Params(engine="dfn3"))
    from audioprep.stages.separate import SeparateStage

    engine = "dfn3" if name == "separate-dfn3" else "spleeter"
    return SeparateStage(SeparateStage.Params(engine=engine))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--shows", type=int, default=3)
    ap.add_argument("--out", type=Path, default=Path("/tmp/bench-enhance"))
    ap.add_argument("--methods", default="denoise-dfn3,separate-dfn3,separate-spleeter")
    args = ap.parse_args()
    rng = np.random.default_rng(7)
    clean = shows(args.shows, rng)
    music = load16(MUSANMIX)[: int(22.48 * SR)]
    conditions = {
        "white noise 5 dB": lambda s: mix_at(s, rng.standard_normal(len(s)), 5.0),
        "music 0 dB": lambda s: mix_at(s, music, 0.0),
        "music -6 dB": lambda s: mix_at(s, music, -6.0),
    }
    dnsmos = DnsmosEngine()
    ovrl = lambda x: dnsmos.score(x.astype(np.float32))["ovrl"]  # noqa: E731
    rows = []
    clean_ovrl = np.mean([ovrl(s) for s in clean])
    for cond, make in conditions.items():
        folder = args.out / cond.replace(" ", "_")
        mixes = {f"show{i}": make(s) for i, s in enumerate(clean)}
        files = {}
        for k, x in mixes.items():
            folder.mkdir(parents=True, exist_ok=True)
            sf.write(str(folder / f"{k}.wav"), x, SR, subtype="FLOAT")
            files[k] = folder / f"{k}.wav"
        in_dir = make_manifest_dir(folder / "in", files)
        seconds = sum(len(x) for x in mixes.values()) / SR
        mix_sdr = np.mean([si_sdr(c, mixes[k]) for k, c in zip(mixes, clean, strict=True)])
        mix_ovrl = np.mean([ovrl(x) for x in mixes.values()])
        rows.append((cond, "mixture (none)", mix_sdr, mix_ovrl, clean_ovrl, None, None))
        for method in args.methods.split(","):
            out = folder / method
            t0, c0 = time.perf_counter(), _cpu()
            summary = run_stage(stage(method), out, in_dir=in_dir, jobs=1, progress=False)
            wall, cpu = time.perf_counter() - t0, _cpu() - c0
            if summary.items_failed:
                print((out / "errors.jsonl").read_text(), file=sys.stderr)
            recs = {r["id"]: r for r in read_jsonl(out / "manifest.jsonl")}
            sdrs, ovrls = [], []
            for k, c in zip(mixes, clean, strict=True):
                y = load16(out / recs[k]["audio"])[: len(c)]
                sdrs.append(si_sdr(c, y))
                ovrls.append(ovrl(y))
            rows.append(
                (
                    cond,
                    method,
                    np.mean(sdrs),
                    np.mean(ovrls),
                    clean_ovrl,
                    seconds / wall,
                    seconds / cpu,
                )
            )
            print(rows[-1], file=sys.stderr, flush=True)
    print(f"{args.shows} shows of {np.mean([len(s) for s in clean]) / SR:.1f} s each\n")
    print(
        "| condition | method | SI-SDR (dB) | DNSMOS OVRL | clean OVRL | × real time (wall) "
        "| × real time per CPU-second |"
    )
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for cond, method, sdr, ov, cov, speed, per_cpu in rows:
        x = "" if speed is None else f"{speed:.2f}"
        y = "" if per_cpu is None else f"{per_cpu:.2f}"
        if "spleeter" in method:  # its worker process outlives the run: its CPU is not counted
            y = "n/a"
        print(f"| {cond} | {method} | {sdr:.1f} | {ov:.2f} | {cov:.2f} | {x} | {y} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
