"""make bench: each stage's throughput (x real time) and peak memory, beside the raw tool.

Builds a corpus once under bench-out/corpus from ../shared (240 short mp3 files, 44.1 kHz
stereo, and one 1-hour mp3), then times audioprep with --jobs 1 and --jobs 2 and the raw tool
(ffprobe / ffmpeg run by xargs -P, yt-dlp on a local feed of the same files, the
inaSpeechSegmenter and spleeter CLIs) on the same files in the same run. Peak memory is the
largest summed RSS of the whole process tree, sampled every 50 ms.

Every wrapper is measured beside its engine in the same run: the two commands alternate
(wrapper, engine, wrapper, engine...) --repeat times (default 2) and each keeps its median, so a
shared machine's load falls on both alike; nothing is carried over from an earlier day. Usage:
python scripts/bench.py [--only ingest,convert,trim] [--quick] [--repeat N]
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import shutil
import subprocess
import sys
import threading
import time
import urllib.parse
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("AUDIOPREP_SHARED", REPO.parent / "shared"))
# Run directly (`python scripts/bench.py`) as well as through `make bench`: the stages it starts
# find the models and Spleeter's environment where the Makefile would point them.
os.environ.setdefault("AUDIOPREP_SHARED", str(SHARED))
os.environ.setdefault("AUDIOPREP_MODEL_DIR", str(SHARED / "models"))
os.environ.setdefault("AUDIOPREP_SPLEETER_PYTHON", str(REPO / ".spleeter-venv" / "bin" / "python"))
MODEL_DIR = Path(os.environ["AUDIOPREP_MODEL_DIR"])
# the stages it starts run THIS checkout's code (a worktree's too, not an installed copy)
os.environ["PYTHONPATH"] = os.pathsep.join(
    [str(REPO / "src"), *filter(None, [os.environ.get("PYTHONPATH")])]
)
OUT = REPO / "bench-out"
CORPUS = OUT / "corpus"
AUDIOPREP = [sys.executable, "-m", "audioprep"]


def _children(pid: int) -> list[int]:
    kids: list[int] = []
    try:
        for tid in os.listdir(f"/proc/{pid}/task"):
            with open(f"/proc/{pid}/task/{tid}/children") as fh:
                kids += [int(x) for x in fh.read().split()]
    except OSError:
        pass
    return kids


def _rss_mb(pid: int) -> float:
    try:
        with open(f"/proc/{pid}/statm") as fh:
            return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20
    except OSError:
        return 0.0


@dataclass
class Measure:
    seconds: float
    peak_mb: float


REPEAT = 2


def _median(runs: list[Measure]) -> Measure:
    times = sorted(m.seconds for m in runs)
    mid = len(times) // 2
    seconds = times[mid] if len(times) % 2 else (times[mid - 1] + times[mid]) / 2
    return Measure(seconds, max(m.peak_mb for m in runs))


def measure(cmd: list[str] | str) -> Measure:
    """Median wall time and largest peak tree RSS of ``REPEAT`` runs of ``cmd``."""
    return _median([measure_once(cmd) for _ in range(REPEAT)])


def pair(ours: list[str] | str, engine: list[str] | str) -> tuple[Measure, Measure]:
    """``ours`` and ``engine`` alternating ``REPEAT`` times; the median of each."""
    a: list[Measure] = []
    b: list[Measure] = []
    for _ in range(REPEAT):
        a.append(measure_once(ours))
        b.append(measure_once(engine))
    return _median(a), _median(b)


def measure_once(cmd: list[str] | str) -> Measure:
    """Run ``cmd`` (argv, or a shell string); return wall time and peak tree RSS."""
    peak = 0.0
    start = time.perf_counter()
    proc = subprocess.Popen(
        cmd, shell=isinstance(cmd, str), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    done = threading.Event()

    def sample() -> None:
        nonlocal peak
        while not done.is_set():
            tree, stack = [], [proc.pid]
            while stack:
                pid = stack.pop()
                tree.append(pid)
                stack += _children(pid)
            peak = max(peak, sum(_rss_mb(p) for p in tree))
            done.wait(0.05)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    rc = proc.wait()
    seconds = time.perf_counter() - start
    done.set()
    sampler.join()
    if rc not in (0, 1):
        raise SystemExit(f"bench: command failed ({rc}): {cmd}")
    return Measure(seconds, peak)


def ffmpeg(*args: str) -> None:
    subprocess.run(["ffmpeg", "-nostdin", "-v", "error", "-y", *args], check=True)


def audio_seconds(manifest_dir: Path) -> float:
    with open(manifest_dir / "manifest.jsonl") as fh:
        return sum(json.loads(line)["duration"] for line in fh if line.strip())


def build_corpus(n_short: int) -> tuple[Path, Path]:
    """240 short mp3 (44.1 kHz stereo) from LibriSpeech, and a 1-hour mp3 from musanmix."""
    short = CORPUS / f"short{n_short}"
    long_file = CORPUS / "long" / "one-hour.mp3"
    if not short.is_dir():
        tmp = CORPUS / "short.tmp"
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
        flacs = sorted((SHARED / "data" / "librispeech-test-other").glob("*/*.flac"))
        encoded = []
        for f in flacs:
            dst = tmp / f"{f.stem}.mp3"
            ffmpeg("-i", str(f), "-ar", "44100", "-ac", "2", "-b:a", "128k", str(dst))
            encoded.append(dst)
        for i in range(n_short):
            src = encoded[i % len(encoded)]
            os.link(src, tmp / f"clip {i:04d} {src.name}")
        for f in encoded:
            f.unlink()
        tmp.rename(short)
    if not long_file.exists():
        long_file.parent.mkdir(parents=True, exist_ok=True)
        mix = SHARED / "data" / "musan-mix" / "musanmix.wav"
        ffmpeg(
            "-stream_loop",
            "-1",
            "-i",
            str(mix),
            "-t",
            "3600",
            "-ar",
            "44100",
            "-ac",
            "2",
            "-b:a",
            "128k",
            str(long_file) + ".part.mp3",
        )
        os.replace(str(long_file) + ".part.mp3", long_file)
    return short, long_file


def xargs(jobs: int, files_dir: Path, pattern: str, script: str) -> str:
    """A shell line running ``script`` (with $1 the file) over files by xargs -P jobs."""
    return (
        f"find '{files_dir}' -name '{pattern}' -print0 | xargs -0 -P {jobs} -n 1 sh -c '{script}' _"
    )


def bench_crawl(key: str, src: Path, label: str, work: Path, ap, row) -> None:
    """crawl over a local podcast feed of the corpus files, against yt-dlp on the same feed.

    The files are served by ``python -m http.server`` on 127.0.0.1, so the figures measure
    the tools, not a network.
    """
    port_file = work / f"{key}-port"
    server = subprocess.Popen(
        [sys.executable, "-m", "http.server", "0", "--bind", "127.0.0.1", "-d", str(src)],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        assert server.stdout is not None
        line = server.stdout.readline()  # "Serving HTTP on 127.0.0.1 port N (...) ..."
        port = int(line.split(" port ")[1].split()[0])
        port_file.write_text(str(port))
        base = f"http://127.0.0.1:{port}"
        files = sorted(p.name for p in src.glob("*.mp3"))
        items = "".join(
            f'<item><title>{n}</title><guid>{i}</guid><enclosure url="{base}/'
            f'{urllib.parse.quote(n)}" type="audio/mpeg"/></item>'
            for i, n in enumerate(files)
        )
        (src / "feed.xml").write_text(
            f'<rss version="2.0"><channel><title>bench</title>{items}</channel></rss>'
        )
        feed = f"{base}/feed.xml"
        out = work / f"{key}-crawl"
        a1 = measure(ap("crawl", feed, out, "-j", 1))
        a2 = measure(ap("crawl", feed, out, "-j", 2))
        raw = work / f"{key}-ytdlp"
        y1 = measure(
            f"rm -rf '{raw}' && '{Path(sys.executable).parent / 'yt-dlp'}' -q --no-progress "
            f"-f bestaudio/best -o '{raw}/%(id)s.%(ext)s' '{feed}'"
        )
        row("crawl", label, audio_seconds(out), ap_j1=a1, ap_j2=a2, ytdlp_cli=y1)
    finally:
        server.terminate()
        server.wait()
        (src / "feed.xml").unlink(missing_ok=True)


def bench_features(key, wav, label, secs, work, ap, row, only) -> None:
    """features (logspec, tone) and tone --clusters on the 16 kHz mono wavs, against librosa
    by hand (scripts/raw_librosa_features.py: whole files in memory, one process)."""
    raw = [sys.executable, str(REPO / "scripts" / "raw_librosa_features.py")]
    if "features" in only:
        out = work / f"{key}-features"
        runs = {
            "ap_j1": measure(ap("features", wav, out, "--kind", "logspec", "-j", 1)),
            "ap_j2": measure(ap("features", wav, out, "--kind", "logspec", "-j", 2)),
            "ap_f16_minmax_j1": measure(
                ap("features", wav, out, "--normalise", "minmax", "--dtype", "float16", "-j", 1)
            ),
            "librosa_j1": measure([*raw, "logspec", wav / "audio", work / f"{key}-rawfeat"]),
        }
        row("features logspec", label, secs, **runs)
        t1 = measure(ap("features", wav, out, "--kind", "tone", "-j", 1))
        t2 = measure(ap("features", wav, out, "--kind", "tone", "-j", 2))
        r1 = measure([*raw, "tone", wav / "audio", work / f"{key}-rawtone"])
        row("features tone", label, secs, ap_j1=t1, ap_j2=t2, librosa_j1=r1)
    if "tone" in only and key == "short":
        c1 = measure(ap("tone", wav, work / f"{key}-tone", "--clusters", 2, "-j", 1))
        c2 = measure(ap("tone", wav, work / f"{key}-tone", "--clusters", 2, "-j", 2))
        row("tone --clusters 2", label, secs, ap_j1=c1, ap_j2=c2)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--only",
        default="crawl,ingest,convert,trim,denoise,segment,slice,speaker,separate,quality,loudness",
    )
    parser.add_argument("--quick", action="store_true", help="60 short files, no 1-hour file")
    parser.add_argument("--repeat", type=int, default=2, help="runs per measure (best is kept)")
    args = parser.parse_args()
    global REPEAT
    REPEAT = max(1, args.repeat)
    only = set(args.only.split(","))
    n_short = 60 if args.quick else 240
    short, long_file = build_corpus(n_short)
    work = OUT / "work"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    rows: list[dict] = []

    def row(stage: str, corpus: str, seconds_audio: float, **runs: Measure) -> None:
        r = {"stage": stage, "corpus": corpus, "audio_s": round(seconds_audio, 1)}
        for name, m in runs.items():
            r[name] = {
                "x_rt": round(seconds_audio / m.seconds, 1),
                "s": round(m.seconds, 2),
                "peak_mb": round(m.peak_mb),
            }
        rows.append(r)
        cells = "  ".join(
            f"{n}: {m.seconds:7.2f} s {seconds_audio / m.seconds:7.0f}x {m.peak_mb:6.0f} MB"
            for n, m in runs.items()
        )
        print(f"{stage:8} {corpus:14} {cells}", flush=True)

    def ap(*a: object) -> list[str]:
        return [*AUDIOPREP, *map(str, a), "-q", "--overwrite"]

    corpora = [("short", short, f"{n_short} short")]
    if not args.quick:
        corpora.append(("long", long_file.parent, "1 x 1 hour"))
    for key, src, label in corpora:
        if "crawl" in only:
            bench_crawl(key, src, label, work, ap, row)
        if not only - {"crawl"}:
            continue
        raw = work / f"{key}-raw"
        # ingest: probe + hard link, against ffprobe alone
        probe = 'ffprobe -v error -show_format -show_streams -of json "$1"'
        if "ingest" in only:
            m1, r1 = pair(ap("ingest", src, raw, "-j", 1), xargs(1, src, "*.mp3", probe))
        else:
            m1 = measure_once(ap("ingest", src, raw, "-j", 1))
        m2 = measure(ap("ingest", src, raw, "-j", 2))
        secs = audio_seconds(raw)
        if "ingest" in only:
            r2 = measure(xargs(2, src, "*.mp3", probe))
            row("ingest", label, secs, ap_j1=m1, ap_j2=m2, ffprobe_j1=r1, ffprobe_j2=r2)
        # convert: mp3 44.1k stereo -> wav 16k mono, against the same ffmpeg command
        wav = work / f"{key}-wav"
        raw_out = work / f"{key}-ffmpeg"
        raw_out.mkdir()
        conv = (
            'ffmpeg -nostdin -v error -y -i "$1" -map 0:a:0 -ar 16000 -ac 1 -c:a pcm_s16le '
            f'"{raw_out}/$(basename "$1").wav"'
        )
        if "convert" in only:
            c1, f1 = pair(
                ap("convert", raw, wav, "-r", 16000, "-c", 1, "-j", 1),
                xargs(1, src, "*.mp3", conv),
            )
        else:
            c1 = measure_once(ap("convert", raw, wav, "-r", 16000, "-c", 1, "-j", 1))
        c2 = measure(ap("convert", raw, wav, "-r", 16000, "-c", 1, "-j", 2))
        if "convert" in only:
            f2 = measure(xargs(2, src, "*.mp3", conv))
            row("convert", label, secs, ap_j1=c1, ap_j2=c2, ffmpeg_j1=f1, ffmpeg_j2=f2)
        if "features" in only or "tone" in only:
            bench_features(key, wav, label, secs, work, ap, row, only)
        if "trim" in only:
            trimmed = work / f"{key}-trim"
            ff_trim = work / f"{key}-fftrim"
            ff_trim.mkdir()
            tcmd = (
                'ffmpeg -nostdin -v error -y -i "$1" -af atrim=start=0.5 '
                f'-c:a pcm_s16le "{ff_trim}/$(basename "$1")"'
            )
            t1, g1 = pair(
                ap("trim", wav, trimmed, "--head", 0.5, "-j", 1),
                xargs(1, wav / "audio", "*.wav", tcmd),
            )
            t2 = measure(ap("trim", wav, trimmed, "--head", 0.5, "-j", 2))
            g2 = measure(xargs(2, wav / "audio", "*.wav", tcmd))
            row("trim", label, secs, ap_j1=t1, ap_j2=t2, ffmpeg_j1=g1, ffmpeg_j2=g2)

        if "loudness" in only:
            # two streamed passes to -23 LUFS / -1 dBTP, against ffmpeg-normalize (EBU R128
            # loudnorm, two passes) writing the same 16 kHz 16-bit wav, two files at a time
            ffnorm = Path(sys.executable).parent / "ffmpeg-normalize"
            loud = work / f"{key}-loud"
            n1 = measure(ap("loudness", wav, loud, "-j", 1))
            ff_dir = work / f"{key}-ffnorm"
            ff_dir.mkdir()
            ncmd = (
                f'"{ffnorm}" "$1" -f -q -nt ebu -t -23 -tp -1 -c:a pcm_s16le -ar 16000 '
                f'-o "{ff_dir}/$(basename "$1")"'
            )
            n2, e2 = pair(
                ap("loudness", wav, loud, "-j", 2), xargs(2, wav / "audio", "*.wav", ncmd)
            )
            row("loudness", label, secs, ap_j1=n1, ap_j2=n2, ffmpeg_normalize_j2=e2)

        if "quality" in only:
            # signal metrics alone (--no-dnsmos) on everything; DNSMOS on 10 short files (about
            # a second of CPU per 9 s window), against speechmos's own dnsmos.run
            m1 = measure(ap("quality", wav, work / f"{key}-qsig", "--no-dnsmos", "-j", 1))
            m2 = measure(ap("quality", wav, work / f"{key}-qsig", "--no-dnsmos", "-j", 2))
            row("quality --no-dnsmos", label, secs, ap_j1=m1, ap_j2=m2)
            if key == "short":
                sub_in = work / "quality-in"
                shutil.rmtree(sub_in, ignore_errors=True)
                (sub_in / "audio").mkdir(parents=True)
                lines = [json.loads(x) for x in (wav / "manifest.jsonl").read_text().splitlines()]
                keep = lines[:10]
                for r in keep:
                    os.link(wav / r["audio"], sub_in / r["audio"])
                (sub_in / "manifest.jsonl").write_text("".join(json.dumps(r) + "\n" for r in keep))
                q1, ref = pair(
                    ap("quality", sub_in, work / "quality-out", "-j", 1),
                    [
                        sys.executable,
                        str(REPO / "scripts" / "raw_dnsmos.py"),
                        str(sub_in / "audio"),
                        str(work / "speechmos.jsonl"),
                    ],
                )
                whisper = next(
                    (
                        MODEL_DIR / "whisper" / n
                        for n in ("base", "tiny.en", "base.en", "tiny")
                        if (MODEL_DIR / "whisper" / n / "model.bin").is_file()
                    ),
                    None,
                )
                if whisper is None:
                    print(f"transcribe: skipped, no Whisper model in {MODEL_DIR / 'whisper'}")
                else:  # the same 10 files through faster-whisper alone, same model
                    listing = work / "transcribe-files.txt"
                    listing.write_text("".join(f"{sub_in / r['audio']}\n" for r in keep))
                    w1, w0 = pair(
                        ap("transcribe", sub_in, work / "transcribe-out", "--model", whisper)
                        + ["--no-download", "--language", "en", "-j", "1"],
                        [
                            sys.executable,
                            str(REPO / "scripts" / "raw_whisper.py"),
                            listing,
                            whisper,
                        ],
                    )
                    row(f"transcribe {whisper.name}", "10 short", audio_seconds(sub_in),
                        ap_j1=w1, faster_whisper=w0)  # fmt: skip
                q0 = measure(ap("quality", sub_in, work / "quality-sig", "--no-dnsmos", "-j", 1))
                row(
                    "quality",
                    "10 short",
                    audio_seconds(sub_in),
                    ap_j1=q1,
                    speechmos=ref,
                    ap_no_dnsmos_j1=q0,
                )

        if "denoise" in only:
            # 6th-order Butterworth low-pass at 16 kHz, causal, against scipy on whole arrays
            clean = work / f"{key}-denoise"
            d1 = measure(
                ap("denoise", wav, clean, "--lowpass", 5000, "--rolloff", 36, "--causal", "-j", 1)
            )
            d2 = measure(
                ap("denoise", wav, clean, "--lowpass", 5000, "--rolloff", 36, "--causal", "-j", 2)
            )
            z1, s1 = pair(
                ap("denoise", wav, clean, "--lowpass", 5000, "--rolloff", 36, "-j", 1),
                [
                    sys.executable,
                    str(REPO / "scripts" / "raw_scipy_filter.py"),
                    str(wav / "audio"),
                    str(work / f"{key}-scipy"),
                ],
            )
            row(
                "denoise",
                label,
                secs,
                ap_causal_j1=d1,
                ap_causal_j2=d2,
                ap_zerophase_j1=z1,
                scipy_j1=s1,
            )

        if "segment" in only or "slice" in only:
            seg = work / f"{key}-seg"
            ina_cli = Path(sys.executable).parent / "ina_speech_segmenter.py"
            files = " ".join(f"'{p}'" for p in sorted((wav / "audio").glob("*.wav")))
            if "segment" not in only:
                i1 = measure_once(ap("segment", wav, seg, "-j", 1))
            if "segment" in only:
                i2 = measure(ap("segment", wav, seg, "-j", 2))
                s1 = measure(ap("segment", wav, work / f"{key}-sil", "--engine", "silero", "-j", 1))
                s2 = measure(ap("segment", wav, work / f"{key}-sil", "--engine", "silero", "-j", 2))
                raw_seg = work / f"{key}-inacli"
                raw_seg.mkdir(exist_ok=True)
                model_dir = os.environ.get("AUDIOPREP_MODEL_DIR", str(SHARED / "models"))
                cli_cmd = (
                    f"KERAS_HOME='{model_dir}' '{sys.executable}' '{ina_cli}' -g false "
                    f"-d smn -s 256 -o '{raw_seg}' -i {files}"
                )
                i1, c1 = pair(ap("segment", wav, seg, "-j", 1), cli_cmd)
                made = len(list(raw_seg.glob("*.csv")))
                if made != len(list((wav / "audio").glob("*.wav"))):
                    raise SystemExit(f"bench: ina_speech_segmenter.py wrote {made} CSV files")
                row(
                    "segment",
                    label,
                    secs,
                    ap_ina_j1=i1,
                    ap_ina_j2=i2,
                    ap_silero_j1=s1,
                    ap_silero_j2=s2,
                    ina_cli=c1,
                )
            if "slice" in only:
                l1 = measure(ap("slice", seg, work / f"{key}-clips", "--labels", "speech", "-j", 1))
                l2 = measure(ap("slice", seg, work / f"{key}-clips", "--labels", "speech", "-j", 2))
                row("slice", label, secs, ap_j1=l1, ap_j2=l2)
        if key == "long" and "segment" in only:
            two = CORPUS / "long" / "two-hours.wav"
            if not two.exists():
                ffmpeg(
                    "-stream_loop",
                    "1",
                    "-i",
                    str(next((wav / "audio").glob("*.wav"))),
                    "-c",
                    "copy",
                    str(two) + ".part.wav",
                )
                os.replace(str(two) + ".part.wav", two)
            raw2 = work / "two-raw"
            measure(ap("ingest", two, raw2))
            t1 = measure(ap("segment", raw2, work / "two-seg", "-j", 1))
            row("segment", "1 x 2 hours", audio_seconds(raw2), ap_ina_j1=t1)

        if "speaker" in only and key == "short":
            # torch threads per worker: 1 against 2 (AUDIOPREP_THREADS), and two workers of one
            spk = work / f"{key}-spk"
            ref = sorted((SHARED / "data" / "librispeech-test-other" / "1688").glob("*.flac"))[:3]
            refs = [a for r in ref for a in ("--reference", r)]
            runs = {}
            for threads, jobs in ((1, 1), (2, 1), (1, 2)):
                os.environ["AUDIOPREP_THREADS"] = str(threads)
                runs[f"ap_t{threads}_j{jobs}"] = measure(
                    ap("speaker-filter", wav, spk, *refs, "-j", jobs)
                )
            os.environ["AUDIOPREP_THREADS"] = "1"  # adaptive enrolment (default) against none
            runs["ap_t1_j1_no_adapt"] = measure(
                ap("speaker-filter", wav, spk, *refs, "--no-adapt", "-j", 1)
            )
            # against Resemblyzer's own loop on the same files (preprocess_wav + embed_utterance)
            listing = work / f"{key}-spk-files.txt"
            listing.write_text("".join(f"{f}\n" for f in sorted((wav / "audio").glob("*.wav"))))
            ref_dir = work / "spk-ref"
            ref_dir.mkdir(exist_ok=True)
            for r in ref:
                if not (ref_dir / r.name).exists():
                    os.symlink(r, ref_dir / r.name)
            os.environ.pop("AUDIOPREP_THREADS")  # both with the machine's threads
            runs["ap_j1_beside"], runs["resemblyzer_loop"] = pair(
                ap("speaker-filter", wav, spk, *refs, "-j", 1),
                [sys.executable, str(REPO / "scripts" / "raw_resemblyzer.py"), listing, ref_dir],
            )
            row("speaker-filter", label, secs, **runs)

        if "separate" in only:
            # 20 short files, or a 20-minute file, against `spleeter separate` on the same files
            spl_py = os.environ.get(
                "AUDIOPREP_SPLEETER_PYTHON", str(REPO / ".spleeter-venv" / "bin" / "python")
            )
            spl_cli = Path(spl_py).parent / "spleeter"
            model_dir = os.environ.get("AUDIOPREP_MODEL_DIR", str(SHARED / "models"))
            sub_in = work / f"{key}-sep-in"
            if key == "short":
                files = sorted((wav / "audio").glob("*.wav"))[:20]
                shutil.rmtree(sub_in, ignore_errors=True)
                (sub_in / "audio").mkdir(parents=True)
                lines = [json.loads(x) for x in (wav / "manifest.jsonl").read_text().splitlines()]
                keep = [r for r in lines if Path(r["audio"]).name in {f.name for f in files}]
                for r in keep:
                    os.link(wav / r["audio"], sub_in / r["audio"])
                (sub_in / "manifest.jsonl").write_text("".join(json.dumps(r) + "\n" for r in keep))
                label_sep = "20 short"
            else:
                twenty = CORPUS / "long" / "twenty-minutes.wav"
                if not twenty.exists():
                    ffmpeg(
                        "-i", str(next((wav / "audio").glob("*.wav"))), "-t", "1200", str(twenty)
                    )
                measure(ap("ingest", twenty, sub_in))
                files = [twenty]
                label_sep = "1 x 20 minutes"
            names = " ".join(f"'{f}'" for f in files)
            raw_dir = work / f"{key}-spleeter-cli"
            p1, r1 = pair(
                ap("separate", sub_in, work / f"{key}-sep", "-j", 1),
                f"MODEL_PATH='{model_dir}/spleeter' '{spl_cli}' separate -p "
                f"spleeter:2stems -o '{raw_dir}' {names}",
            )
            p2 = measure(ap("separate", sub_in, work / f"{key}-sep", "-j", 2))
            row("separate", label_sep, audio_seconds(sub_in), ap_j1=p1, ap_j2=p2, spleeter_cli=r1)

    meta = {
        "date": dt.date.today().isoformat(),
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, {platform.python_version()}",
        "repeat": REPEAT,
        "rows": rows,
    }
    (OUT / "results.json").write_text(json.dumps(meta, indent=2) + "\n")
    print(f"\nbench: results in {OUT / 'results.json'}")


if __name__ == "__main__":
    main()
