"""Measure `audioprep speakers` on LibriSpeech voices rendered through codecs and beds.

    python scripts/eval_speakers_ids.py WORK [--split dev|test|all] [--engine campplus|resemblyzer]

Builds WORK/<split>/clips (the six test-other voices, 10 utterances each, and the 177
train-clean voices, one utterance each; every clip through one of several codecs and noise or
music beds with ffmpeg, chosen by a hash of its name), ingests it, runs `audioprep speakers`
twice (the second run `--against` the first, on the clips in another order and rendering), and
prints cluster purity, the share of each multi-clip voice in its main cluster, the number of
clusters against the true number, the named voice's name, and `--against` consistency.

``--split six``: the six test-other voices (five male, one female; ten clips each, the named
voice's three references left out) and eight one-clip male voices, the shape of the issue's
corpus. The splits keep voices apart, so a stopping rule tuned on `dev` is measured on `test`:
dev = test-other 1688, 2033, 2414 and the odd train-clean voices; test = 1998, 2609, 3005 and
the even ones. Needs ../shared (AUDIOPREP_SHARED) and ffmpeg.
"""

from __future__ import annotations

import argparse
import collections
import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np

SHARED = Path(os.environ.get("AUDIOPREP_SHARED", Path(__file__).parents[2] / "shared"))
OTHER = SHARED / "data" / "librispeech-test-other"
CLEAN = SHARED / "data" / "librispeech-train-clean-100"
MUSIC = SHARED / "data" / "music" / "audio_example.mp3"
SPLITS = {"dev": ("1688", "2033", "2414"), "test": ("1998", "2609", "3005")}
#: (name, ffmpeg output options, extension)
CODECS = [
    ("wav", ["-c:a", "pcm_s16le"], "wav"),
    ("mp3-32k", ["-c:a", "libmp3lame", "-b:a", "32k"], "mp3"),
    ("opus-16k", ["-c:a", "libopus", "-b:a", "16k"], "opus"),
    ("aac-48k", ["-c:a", "aac", "-b:a", "48k"], "m4a"),
    ("phone-8k", ["-af", "highpass=f=300,lowpass=f=3400", "-ar", "8000"], "wav"),
]
#: beds under the speech: (name, ffmpeg source or "music"); level: signal-to-bed ratio in dB
BEDS = [
    ("none", None),
    ("pink", "anoisesrc=color=pink:sample_rate=16000"),
    ("brown", "anoisesrc=color=brown:sample_rate=16000"),
    ("music", "music"),
]
SNRS = (20, 15, 10)


def _pick(name: str, salt: str, n: int) -> int:
    return int(hashlib.sha1(f"{salt}:{name}".encode()).hexdigest(), 16) % n


def voices(split: str) -> dict[str, list[Path]]:
    """Speaker -> its utterances, for the split."""
    out: dict[str, list[Path]] = {}
    keep = SPLITS[split] if split in SPLITS else SPLITS["dev"] + SPLITS["test"]
    if split == "six":  # the done-when's shape: same-gender voices of ten clips, a few one-clip
        for spk in keep:
            out[spk] = sorted((OTHER / spk).glob("*.flac"))
        male = {
            line.split("|")[0].strip()
            for line in (CLEAN / "SPEAKERS.TXT").read_text().splitlines()
            if not line.startswith(";")
            and line.count("|") >= 2
            and line.split("|")[1].strip() == "M"
        }
        for f in sorted(CLEAN.glob("*.flac")):
            if f.name.split("-")[0] in male and len(out) < len(keep) + 8:
                out[f.name.split("-")[0]] = [f]
        return out
    for spk in keep:
        out[spk] = sorted((OTHER / spk).glob("*.flac"))
    clean = sorted(CLEAN.glob("*.flac"))
    for i, f in enumerate(clean):
        if split == "all" or (i % 2 == 1) == (split == "dev"):
            out[f.name.split("-")[0]] = [f]
    return out


def _pcm(cmd: list[str]) -> np.ndarray:
    raw = subprocess.run(cmd, check=True, capture_output=True).stdout
    return np.frombuffer(raw, "<f4").astype(np.float64)


BEDS_ON = True
CODECS_ON = True


def render(src: Path, dst_dir: Path, salt: str) -> Path:
    """``src`` with a bed at 10-20 dB under the speech, through a codec (by a hash)."""
    codec, opts, ext = CODECS[_pick(src.name, salt + "c", len(CODECS))] if CODECS_ON else CODECS[0]
    bed = BEDS[_pick(src.name, salt + "b", len(BEDS))]
    snr = SNRS[_pick(src.name, salt + "s", len(SNRS))]
    dst = dst_dir / f"{src.stem}.{ext}"
    if dst.exists():
        return dst
    raw = ["-f", "f32le", "-ac", "1", "-ar", "16000", "-"]
    ff = ["ffmpeg", "-nostdin", "-loglevel", "error"]
    x = _pcm([*ff, "-i", str(src), *raw])
    if bed[1] is not None and BEDS_ON:
        if bed[1] == "music":
            b = _pcm(
                [*ff, "-stream_loop", "-1", "-i", str(MUSIC), "-t", f"{len(x) / 16000:.3f}", *raw]
            )
        else:
            b = _pcm([*ff, "-f", "lavfi", "-i", bed[1], "-t", f"{len(x) / 16000:.3f}", *raw])
        b = np.resize(b, len(x))
        rms = lambda a: float(np.sqrt(np.mean(a**2)) + 1e-12)  # noqa: E731
        x = x + b * (rms(x) / rms(b)) * 10 ** (-snr / 20)
        x = x / max(1.0, float(np.abs(x).max()) / 0.99)
    subprocess.run(
        [*ff, "-y", "-f", "f32le", "-ar", "16000", "-ac", "1", "-i", "-", *opts, str(dst)],
        input=x.astype("<f4").tobytes(),
        check=True,
    )
    return dst


def build(work: Path, split: str, salt: str) -> dict[str, str]:
    """Render the split's clips into ``work``; returns clip stem -> true speaker."""
    work.mkdir(parents=True, exist_ok=True)
    truth = {}
    for spk, files in voices(split).items():
        for f in files:
            render(f, work, salt)
            truth[f.stem] = spk
    return truth


def cli(*args: str) -> None:
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).parents[1] / "src")}
    subprocess.run([sys.executable, "-m", "audioprep", *args, "--quiet"], check=True, env=env)


def score(out: Path, truth: dict[str, str]) -> dict:
    rows = [json.loads(line) for line in (out / "manifest.jsonl").read_text().splitlines()]
    stem = lambda r: r["id"].rsplit("-", 1)[0]  # noqa: E731 - ingest adds -<hash>
    by_cluster: dict[str, collections.Counter] = collections.defaultdict(collections.Counter)
    by_voice: dict[str, collections.Counter] = collections.defaultdict(collections.Counter)
    names = {}
    for r in rows:
        spk = truth[stem(r)]
        by_cluster[r["speaker"]][spk] += 1
        by_voice[spk][r["speaker"]] += 1
        if r.get("speaker_name"):
            names[r["speaker"]] = r["speaker_name"]
    real = {k: v for k, v in by_cluster.items() if k != "unknown"}
    purity = sum(c.most_common(1)[0][1] for c in real.values()) / max(
        1, sum(sum(c.values()) for c in real.values())
    )
    multi = {v: c for v, c in by_voice.items() if sum(c.values()) >= 5}
    share = {v: c.most_common(1)[0][1] / sum(c.values()) for v, c in multi.items()}
    main = {v: c.most_common(1)[0][0] for v, c in multi.items()}
    return {
        "clips": len(rows),
        "purity": round(purity, 4),
        "share_in_main_cluster": {v: round(s, 3) for v, s in sorted(share.items())},
        "min_share": round(min(share.values()), 3) if share else None,
        "clusters": len(real),
        "unknown_clips": sum(by_cluster.get("unknown", {}).values()),
        "true_voices": len(by_voice),
        "names": {main.get(v, "?"): names.get(main.get(v, "?")) for v in multi},
        "main": main,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("work", type=Path)
    ap.add_argument("--split", default="dev", choices=("dev", "test", "all", "six"))
    ap.add_argument("--merge-threshold", default="auto")
    ap.add_argument("--engine", default="campplus", help="the speaker encoder")
    ap.add_argument("--no-beds", action="store_true", help="codecs only, no noise or music")
    ap.add_argument("--clean", action="store_true", help="no beds, no codecs: wav")
    args = ap.parse_args()
    global BEDS_ON, CODECS_ON
    BEDS_ON = not (args.no_beds or args.clean)
    CODECS_ON = not args.clean
    tag = "-clean" if args.clean else "-nobeds" if args.no_beds else ""
    base = args.work / (args.split + tag)
    named = SPLITS[args.split][0] if args.split in SPLITS else "1688"
    refs = sorted((OTHER / named).glob("*.flac"))[:3]
    refdir = base / "refs"
    refdir.mkdir(parents=True, exist_ok=True)
    for f in refs:
        if not (refdir / f.name).exists():
            (refdir / f.name).symlink_to(f)
    truth: dict[str, str] = {}
    runs = {}
    for run, salt in (("a", "one"), ("b", "two")):
        clips = base / f"clips-{run}"
        t = build(clips, args.split, salt)
        truth.update(t)
        for f in refs:  # references stay out of the corpus
            for p in clips.glob(f.stem + ".*"):
                p.unlink()
        ingest = base / f"in-{run}"
        if not (ingest / "stage.json").exists():
            cli("ingest", str(clips), str(ingest))
        out = base / f"spk-{run}"
        extra = ["--against", str(base / "spk-a")] if run == "b" else []
        cli(
            "speakers",
            str(ingest),
            str(out),
            "--overwrite",
            "--merge-threshold",
            args.merge_threshold,
            "--engine",
            args.engine,
            "--reference",
            f"reader={refdir}",
            *extra,
        )
        runs[run] = score(out, truth)
    a, b = runs["a"]["main"], runs["b"]["main"]
    same = sum(a[v] == b.get(v) for v in a)
    result = {
        "split": args.split,
        "run_a": runs["a"],
        "run_b_against_a": runs["b"],
        "against_consistency": f"{same}/{len(a)} multi-clip voices keep their id",
    }
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
