"""make bench-chain: the speech-tts chain, stage by stage, beside the engines it wraps.

Builds synthetic shows from ../shared (default 3 shows of about 200 s: a music jingle, a host,
LibriSpeech speaker 1688, talking with guests over a quiet bed of random chords, an outro; 44.1
kHz stereo mp3), then runs configs/speech-tts.yaml with ingest instead of crawl, one stage at a
time as its own `python -m audioprep` process, measuring for each stage: wall seconds, x real
time (of the chain's input audio), CPU seconds (the process tree's user + system), peak memory
(largest summed RSS of the tree, sampled every 50 ms) and its share of the chain's wall time.

Then the engine alone on the same files where one exists, alternating with the stage (rerun into
a scratch folder) --repeat times and keeping the median of each, so a shared machine's load falls
on both alike:

- separate: `spleeter separate -p spleeter:2stems` (the CLI, one process for all files);
- segment: `ina_speech_segmenter.py -g false -d smn` (ina's CLI);
- speaker-filter: Resemblyzer's loop (`preprocess_wav` + `embed_utterance` per clip, plus the
  references), scripts/raw_resemblyzer.py;
- quality: speechmos's own `dnsmos.run` per clip (scripts/raw_dnsmos.py);
- transcribe: faster-whisper's `WhisperModel.transcribe` per clip with the same model
  (scripts/bench_transcribe.py's loop), when a Whisper model is in the model dir
  (MODEL_DIR/whisper/base or tiny.en: `make setup`); without one transcribe is left out of the
  chain, with a note.

Last it projects the hours that 670 h of audio would take on this machine (at the chain's own
jobs setting) and per core. Results also go to bench-out/chain/results.json.

Usage: python scripts/bench_chain.py [--shows 3] [--seconds 200] [--repeat 2] [--skip-engines]
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("AUDIOPREP_SHARED", REPO.parent / "shared"))
os.environ.setdefault("AUDIOPREP_SHARED", str(SHARED))
os.environ.setdefault("AUDIOPREP_MODEL_DIR", str(SHARED / "models"))
os.environ.setdefault("AUDIOPREP_SPLEETER_PYTHON", str(REPO / ".spleeter-venv" / "bin" / "python"))
MODEL_DIR = Path(os.environ["AUDIOPREP_MODEL_DIR"])
# the stages it starts run THIS checkout's code (a worktree's too, not an installed copy)
os.environ["PYTHONPATH"] = os.pathsep.join(
    [str(REPO / "src"), *filter(None, [os.environ.get("PYTHONPATH")])]
)
OUT = REPO / "bench-out" / "chain"
AUDIOPREP = [sys.executable, "-m", "audioprep"]
HOST = "1688"
HOURS = 670
MIN_OVRL = 2.3


@dataclass
class Run:
    wall: float
    cpu: float
    peak_mb: float


def _tree(pid: int) -> list[int]:
    out, stack = [], [pid]
    while stack:
        p = stack.pop()
        out.append(p)
        try:
            for tid in os.listdir(f"/proc/{p}/task"):
                with open(f"/proc/{p}/task/{tid}/children") as fh:
                    stack += [int(x) for x in fh.read().split()]
        except OSError:
            pass
    return out


def _rss_mb(pid: int) -> float:
    try:
        with open(f"/proc/{pid}/statm") as fh:
            return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20
    except OSError:
        return 0.0


def run(cmd: list[str] | str, env: dict[str, str] | None = None) -> Run:
    """Run ``cmd``; wall seconds, CPU seconds of the whole tree (children are reaped by their
    parents, so the child's rusage holds them) and peak summed RSS of the tree."""
    peak = 0.0
    start = time.perf_counter()
    proc = subprocess.Popen(
        cmd,
        shell=isinstance(cmd, str),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        env={**os.environ, **(env or {})},
    )
    done = threading.Event()

    def sample() -> None:
        nonlocal peak
        while not done.is_set():
            peak = max(peak, sum(_rss_mb(p) for p in _tree(proc.pid)))
            done.wait(0.05)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    err = proc.stderr.read() if proc.stderr else b""
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    wall = time.perf_counter() - start
    done.set()
    sampler.join()
    if proc.returncode not in (0, 1):
        tail = err.decode("utf-8", "replace").strip().splitlines()[-3:]
        raise SystemExit(f"bench-chain: failed ({proc.returncode}): {cmd}\n" + "\n".join(tail))
    return Run(wall, usage.ru_utime + usage.ru_stime, peak)


def median(runs: list[Run]) -> Run:
    return Run(
        statistics.median(r.wall for r in runs),
        statistics.median(r.cpu for r in runs),
        max(r.peak_mb for r in runs),
    )


def ffmpeg(*args: str) -> None:
    subprocess.run(["ffmpeg", "-nostdin", "-v", "error", "-y", *args], check=True)


def load16k(path: Path) -> np.ndarray:
    data = subprocess.run(
        ["ffmpeg", "-nostdin", "-v", "error", "-i", str(path), "-ac", "1", "-ar", "16000"]
        + ["-f", "f32le", "-"],
        check=True,
        capture_output=True,
    ).stdout
    return np.frombuffer(data, dtype="<f4").copy()


def chords(n: int, rng: np.random.Generator) -> np.ndarray:
    """``n`` samples (16 kHz) of a synthetic music bed: a new random three-note chord every 2 s
    with a short fade, different for every show (a looped song would make dedupe match any two
    shows through their beds)."""
    t = np.arange(2 * 16000) / 16000
    fade = np.minimum(1, np.minimum(t, t[::-1]) / 0.05)
    out = []
    for _ in range(n // len(t) + 1):
        notes = 220 * 2 ** (rng.integers(0, 24, 3) / 12)
        out.append(sum(np.sin(2 * np.pi * f * t) for f in notes) / 3 * fade)
    return np.concatenate(out)[:n].astype(np.float32)


def build_shows(folder: Path, n_shows: int, seconds: float) -> Path:
    """``n_shows`` mp3 shows of about ``seconds`` each (44.1 kHz stereo) in ``folder/shows``,
    and the host's three reference utterances (kept out of the shows) in ``folder/reference``."""
    shows, ref = folder / "shows", folder / "reference"
    tag = folder / f"shows-{n_shows}x{seconds:g}.done"
    if tag.exists():
        return shows
    shutil.rmtree(shows, ignore_errors=True)
    shutil.rmtree(ref, ignore_errors=True)
    shows.mkdir(parents=True)
    ref.mkdir()
    data = SHARED / "data"
    host = sorted((data / "librispeech-test-other" / HOST).glob("*.flac"))
    for f in host[:3]:
        shutil.copy(f, ref / f.name)
    host_utts = [load16k(f) for f in host[3:]]
    pool = [
        f
        for f in sorted((data / "librispeech-test-other").glob("*/*.flac"))
        if f.parent.name != HOST
    ] + sorted((data / "librispeech-train-clean-100").glob("*.flac"))
    pool = [pool[i] for i in np.random.default_rng(7).permutation(len(pool))]
    music = load16k(data / "music" / "audio_example.mp3")
    rng = np.random.default_rng(24)
    gap = np.zeros(int(0.6 * 16000), np.float32)
    g = 0
    for s in range(n_shows):
        parts, n, h = [music[: 5 * 16000] * 0.5], 0, 0
        # each show its own: the host's utterances in another order and 4 % faster or slower per
        # show (the same recordings in every show would make dedupe drop all but one), the bed
        # from another point of the song
        rate = 1 + 0.04 * (s - (n_shows - 1) / 2)
        hosts = [np.interp(np.arange(0, len(u) - 1, rate), np.arange(len(u)), u) for u in host_utts]
        hosts = hosts[s % len(hosts) :] + hosts[: s % len(hosts)]
        while n < (seconds - 10) * 16000:  # host and guests take turns
            utt = hosts[(h // 2) % len(hosts)] if h % 2 == 0 else load16k(pool[g % len(pool)])
            if h % 2:
                g += 1
            h += 1
            parts += [utt, gap]
            n += len(utt) + len(gap)
        speech = np.concatenate(parts[1:])
        bed = chords(len(speech), rng) * 0.05
        show = np.concatenate([parts[0], speech + bed, music[-5 * 16000 :] * 0.5])
        show = (show / max(1.0, float(np.abs(show).max()) / 0.95)).astype("<f4")
        raw = folder / "show.f32"
        show.tofile(raw)
        ffmpeg(
            "-f", "f32le", "-ar", "16000", "-ac", "1", "-i", str(raw), "-ar", "44100",
            "-ac", "2", "-b:a", "160k", str(shows / f"show {s + 1:02d}.mp3"),
        )  # fmt: skip
        raw.unlink()
    tag.write_text("")
    return shows


def whisper_model() -> Path | None:
    for name in ("base", "tiny.en", "base.en", "tiny"):
        folder = MODEL_DIR / "whisper" / name
        if (folder / "model.bin").is_file():
            return folder
    return None


def write_config(folder: Path, shows: Path, whisper: Path | None) -> Path:
    """configs/speech-tts.yaml with ingest of ``shows`` in place of crawl (and transcribe with
    ``whisper``, or without transcribe when no model is installed)."""
    text = (REPO / "configs" / "speech-tts.yaml").read_text()
    text, n = re.subn(
        r"  - crawl:\n(?:      .*\n)+",
        f"  - ingest:\n      sources:\n        - {shows}\n",
        text,
    )
    if n != 1:
        raise SystemExit("bench-chain: configs/speech-tts.yaml has no crawl step to replace")
    if whisper is None:
        text = re.sub(r"  - transcribe:.*\n(?:      .*\n)+", "", text)
    else:
        text = text.replace("${WHISPER_MODEL:-large-v3}", str(whisper))
    text = text.replace("jobs: 0 ", "jobs: 1 ")  # one worker: the CPU figures per stage
    # the synthetic shows (LibriSpeech test-other under a music bed, then Spleeter) score OVRL
    # 2.4-3.0: the preset's 3.0 would leave the stages after quality nothing to measure
    text = text.replace("min-ovrl: 3.0 ", f"min-ovrl: {MIN_OVRL} ")
    config = folder / "speech-tts-bench.yaml"
    config.write_text(text)
    return config


def audio_seconds(folder: Path) -> float:
    with open(folder / "manifest.jsonl") as fh:
        return sum(json.loads(line)["duration"] for line in fh if line.strip())


def manifest_files(folder: Path) -> list[Path]:
    with open(folder / "manifest.jsonl") as fh:
        return [folder / json.loads(line)["audio"] for line in fh if line.strip()]


def engine_command(stage: str, in_dir: Path, scratch: Path, whisper: Path | None, refs: Path):
    """The engine alone on ``in_dir``'s files, or None (with the reason) where none applies."""
    files = manifest_files(in_dir)
    scratch.mkdir(parents=True, exist_ok=True)
    listing = scratch / "files.txt"
    listing.write_text("".join(f"{f}\n" for f in files))
    py = sys.executable
    if stage == "separate":
        spl = Path(os.environ["AUDIOPREP_SPLEETER_PYTHON"]).parent / "spleeter"
        names = " ".join(f"'{f}'" for f in files)
        return (
            f"MODEL_PATH='{MODEL_DIR}/spleeter' '{spl}' separate -p spleeter:2stems "
            f"-o '{scratch}/out' {names}",
            "`spleeter separate -p spleeter:2stems` (CLI)",
        )
    if stage == "segment":
        ina = Path(py).parent / "ina_speech_segmenter.py"
        names = " ".join(f"'{f}'" for f in files)
        return (
            f"KERAS_HOME='{MODEL_DIR}' '{py}' '{ina}' -g false -d smn -s 256 "
            f"-o '{scratch}' -i {names}",
            "`ina_speech_segmenter.py -g false -d smn` (CLI)",
        )
    if stage == "speaker-filter":
        return (
            [py, str(REPO / "scripts" / "raw_resemblyzer.py"), str(listing), str(refs)],
            "Resemblyzer `preprocess_wav` + `embed_utterance` loop",
        )
    if stage == "quality":
        sub = scratch / "audio"
        shutil.rmtree(sub, ignore_errors=True)
        sub.mkdir()
        for i, f in enumerate(files):
            os.symlink(f, sub / f"{i:05d}{f.suffix}")
        return (
            [py, str(REPO / "scripts" / "raw_dnsmos.py"), str(sub), str(scratch / "ref.jsonl")],
            "speechmos `dnsmos.run` per clip",
        )
    if stage == "transcribe" and whisper is not None:
        return (
            [py, str(REPO / "scripts" / "raw_whisper.py"), str(listing), str(whisper)],
            f"faster-whisper `WhisperModel.transcribe` per clip ({whisper.name})",
        )
    return None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shows", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=200.0, help="length of each show")
    parser.add_argument(
        "--repeat", type=int, default=2, help="separate / Spleeter CLI pairs (median kept)"
    )
    parser.add_argument(
        "--repeat-others", type=int, default=1, help="stage / engine pairs for the other stages"
    )
    parser.add_argument("--skip-engines", action="store_true", help="the chain's table only")
    args = parser.parse_args()
    sys.path.insert(0, str(REPO / "src"))
    from audioprep.chains.plan import load_chain, plan

    OUT.mkdir(parents=True, exist_ok=True)
    shows = build_shows(OUT, args.shows, args.seconds)
    whisper = whisper_model()
    config = write_config(OUT, shows, whisper)
    work = OUT / "work"
    shutil.rmtree(work, ignore_errors=True)
    steps = plan(load_chain(config), work)
    notes = [
        f"quality's --min-ovrl lowered from the preset's 3.0 to {MIN_OVRL} for the synthetic shows"
    ]
    if whisper is None:
        notes.append(
            f"transcribe left out: no Whisper model in {MODEL_DIR}/whisper (base or tiny.en; "
            "`make setup` installs them)"
        )
    rows = []
    total_in = 0.0
    for p in steps:
        stage = p.argv[0]
        print(f"[{p.step.dir_name}] {stage} ...", flush=True)
        r = run([*AUDIOPREP, *p.argv, "-q"])
        in_dir = p.call.in_dir
        secs_in = audio_seconds(in_dir) if in_dir and (in_dir / "manifest.jsonl").exists() else 0
        if stage == "ingest":
            total_in = audio_seconds(p.out_dir)
            secs_in = total_in
        row = {"stage": stage, "dir": p.step.dir_name, "in_s": round(secs_in, 1), "ours": r}
        engine = (
            None
            if args.skip_engines or in_dir is None
            else engine_command(stage, in_dir, OUT / "engine" / stage, whisper, OUT / "reference")
        )
        if engine is not None:
            cmd, label = engine
            ours_runs, eng_runs = [r], []
            scratch = OUT / "rerun" / stage
            repeat = args.repeat if stage == "separate" else args.repeat_others
            for i in range(repeat):
                eng_runs.append(run(cmd))
                if i + 1 < repeat:  # the chain's own run is the first of ours
                    shutil.rmtree(scratch, ignore_errors=True)
                    argv = [a if a != str(p.out_dir) else str(scratch) for a in p.argv]
                    ours_runs.append(run([*AUDIOPREP, *argv, "-q"]))
            row.update(ours_median=median(ours_runs), engine=median(eng_runs), label=label)
            row["pairs"] = [
                (round(a.wall, 1), round(b.wall, 1))
                for a, b in zip(ours_runs, eng_runs, strict=True)
            ]
        rows.append(row)
        line = f"  {stage}: {r.wall:.1f} s wall, {r.cpu:.1f} CPU-s, {r.peak_mb:.0f} MB"
        if "engine" in row:
            line += f"; pairs (ours, engine) wall s: {row['pairs']}"
        print(line, flush=True)
    chain_wall = sum(r["ours"].wall for r in rows)
    chain_cpu = sum(r["ours"].cpu for r in rows)
    date = dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    machine = (
        f"{platform.machine()}, {os.cpu_count()} cores, {platform.python_version()}, "
        f"load average at the end {os.getloadavg()[0]:.1f}"
    )
    print(f"\n{date}, {machine}; chain input {total_in:.0f} s of audio ({args.shows} shows)\n")
    print(
        "| stage | its input (s of audio) | wall s | x real time | CPU s | peak MB | share of "
        "chain | engine alone | wall s, median of ours / engine | ratio |"
    )
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    for row in rows:
        r = row["ours"]
        cells = [
            row["stage"],
            f"{row['in_s']:.0f}",
            f"{r.wall:.1f}",
            f"{row['in_s'] / r.wall:.1f}" if r.wall and row["in_s"] else "-",
            f"{r.cpu:.1f}",
            f"{r.peak_mb:.0f}",
            f"{100 * r.wall / chain_wall:.0f} %",
        ]
        if "engine" in row:
            o, e = row["ours_median"], row["engine"]
            cells += [
                row["label"],
                f"{o.wall:.1f} / {e.wall:.1f} (CPU {o.cpu:.1f} / {e.cpu:.1f}, "
                f"peak MB {o.peak_mb:.0f} / {e.peak_mb:.0f})",
                f"{o.wall / e.wall:.2f}",
            ]
        else:
            cells += ["-", "-", "-"]
        print("| " + " | ".join(cells) + " |")
    print(
        f"| whole chain | {total_in:.0f} | {chain_wall:.1f} | {total_in / chain_wall:.2f} | "
        f"{chain_cpu:.1f} | {max(r['ours'].peak_mb for r in rows):.0f} | 100 % | | | |"
    )
    per_hour_wall = chain_wall / total_in  # seconds per second of audio
    per_hour_cpu = chain_cpu / total_in
    print(
        f"\n{HOURS} h of audio: about {HOURS * per_hour_wall:.0f} h on this machine as measured "
        f"(jobs 1, shared), {HOURS * per_hour_cpu:.0f} CPU-hours, i.e. "
        f"{HOURS * per_hour_cpu / (os.cpu_count() or 1):.0f} h on all "
        f"{os.cpu_count()} cores of an idle machine."
    )
    for note in notes:
        print(f"note: {note}")
    results = {
        "date": date,
        "machine": machine,
        "audio_s": total_in,
        "notes": notes,
        "rows": [
            {k: (v.__dict__ if isinstance(v, Run) else v) for k, v in row.items()} for row in rows
        ],
    }
    (OUT / "results.json").write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
