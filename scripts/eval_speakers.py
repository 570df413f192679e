"""speaker-filter on shows it has never seen: a benchmark with exact truth (``make eval-speakers``).

Builds synthetic shows from ../shared: a host (the female 1998 or one of the male hosts of
librispeech-test-other; three of the host's utterances are the references and never play in a
show) talks with 1-4 guests (the odd-numbered half of the 177 librispeech-train-clean-100 voices;
the even half is the impostor bank shipped with the package, so no guest is in the bank), host
share 30-70 %, music beds -10 ... -20 dB or none, every episode rendered differently (mp3 at
64-192 kb/s, AAC, resampled, a different room filter, by ffmpeg). Each show runs the real chain
``ingest -> convert -> trim -> [separate] -> segment -> slice --min-duration 1.5 --max-duration 15
-> speaker-filter --reference x3`` (defaults) and is scored against the truth:

- purity: the host's share of the speech in the kept clips (clip by clip);
- recall: host speech kept, of all host speech and of what slicing covered;
- false splits per single-voice clip (a clip holding one voice that speaker-filter cut);
- missed changes per two-voice clip (both voices >= 1.5 s in the clip, no accepted change within
  0.3 s of the true one), and the changes found within 0.3 s;
- a recall/purity curve over thresholds on the stage's own scores (decision.json).

    nice python scripts/eval_speakers.py --small          # one show, a few minutes on 2 cores
    nice python scripts/eval_speakers.py                  # the whole table (see the docs page)
    nice python scripts/eval_speakers.py --separate-shows 1   # with the separate arm on one show

The functions are importable (tests/stages/test_speaker_filter.py runs the smallest configuration).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("AUDIOPREP_SHARED", REPO.parent / "shared"))
LIBRI = SHARED / "data" / "librispeech-test-other"
POOL = SHARED / "data" / "librispeech-train-clean-100"
MUSANMIX = SHARED / "data" / "musan-mix" / "musanmix.wav"
SONG = SHARED / "data" / "music" / "audio_example.mp3"
SR = 16000
FEMALE_HOST = "1998"
MALE_HOSTS = ("1688", "2033", "2414", "2609", "3005")
REFS = (0, 1, 2)  # the host's reference utterances, never in a show
LEVEL = 0.05  # speech RMS, about -26 dBFS


# -- voices --------------------------------------------------------------------------------


def pool_voices() -> dict[str, dict[str, Any]]:
    """{speaker: {"gender": "F"|"M", "file": path, "half": "bank"|"guest"}} of the 177 voices.

    Sorted by speaker number; even positions are the impostor bank's, odd ones the guests'.
    """
    genders = {}
    for line in (POOL / "SPEAKERS.TXT").read_text(encoding="utf-8").splitlines():
        if line.startswith(";") or "|" not in line:
            continue
        parts = [p.strip() for p in line.split("|")]
        genders[parts[0]] = parts[1]
    files = {f.name.split("-")[0]: f for f in POOL.glob("*.flac")}
    out = {}
    for i, spk in enumerate(sorted(files, key=int)):
        out[spk] = {
            "gender": genders.get(spk, "?"),
            "file": files[spk],
            "half": "bank" if i % 2 == 0 else "guest",
        }
    return out


def host_utterances(host: str) -> list[Path]:
    return sorted((LIBRI / host).glob("*.flac"))


def host_references(host: str) -> list[Path]:
    return [u for i, u in enumerate(host_utterances(host)) if i in REFS]


def load(path: Path | str, sr: int = SR) -> np.ndarray:
    raw = subprocess.run(
        ["ffmpeg", "-nostdin", "-v", "error", "-i", str(path), "-ac", "1", "-ar", str(sr)]
        + ["-f", "f32le", "-"],
        capture_output=True,
        check=True,
    ).stdout
    return np.frombuffer(raw, "<f4").astype(np.float64)


def _rms(x: np.ndarray) -> float:
    return float(np.sqrt(np.mean(x**2)) + 1e-12)


# -- episodes ------------------------------------------------------------------------------


@dataclass
class Episode:
    """One episode's recipe: who speaks, how much of it is the host, the bed and the rendering."""

    name: str
    host: str
    guests: tuple[str, ...]
    host_share: float
    bed_db: float | None  # None: no bed
    render: str  # a key of RENDERINGS
    seed: int
    truth: list[tuple[str, float, float]] = field(default_factory=list)


#: Each rendering: (ffmpeg audio filter or "", output extension, encoder arguments).
RENDERINGS: dict[str, tuple[str, str, list[str]]] = {
    "mp3-64k-small-room": (
        "aecho=0.8:0.35:11|23:0.25|0.12,highpass=f=120,lowpass=f=7000",
        "mp3",
        ["-c:a", "libmp3lame", "-b:a", "64k", "-ar", "22050"],
    ),
    "mp3-128k-stereo-44k": (
        "equalizer=f=3000:t=q:w=1:g=4",
        "mp3",
        ["-c:a", "libmp3lame", "-b:a", "128k", "-ar", "44100", "-ac", "2"],
    ),
    "mp3-192k-hall": (
        "aecho=0.8:0.5:37|61:0.3|0.2",
        "mp3",
        ["-c:a", "libmp3lame", "-b:a", "192k", "-ar", "48000"],
    ),
    "aac-96k-phone-band": (
        "highpass=f=300,lowpass=f=3400",
        "m4a",
        ["-c:a", "aac", "-b:a", "96k", "-ar", "44100"],
    ),
    "aac-160k-warm": (
        "equalizer=f=200:t=q:w=1:g=5,treble=g=-4",
        "m4a",
        ["-c:a", "aac", "-b:a", "160k", "-ar", "48000", "-ac", "2"],
    ),
    "resampled-8k-wav": (
        "aresample=8000,aresample=16000",
        "wav",
        ["-c:a", "pcm_s16le", "-ar", "16000"],
    ),
}


def _pieces(x: np.ndarray, rng: np.random.Generator, lo: float, hi: float) -> list[np.ndarray]:
    """``x`` cut into turns of ``lo``-``hi`` seconds (the last one takes the remainder)."""
    out, at = [], 0
    while at < len(x):
        n = int(rng.uniform(lo, hi) * SR)
        if len(x) - (at + n) < lo * SR:
            n = len(x) - at
        out.append(x[at : at + n])
        at += n
    return out


def build_episode(ep: Episode, raw_dir: Path, voices: dict[str, dict[str, Any]]) -> Path:
    """Render ``ep`` into ``raw_dir`` (the file a user would ingest); fill ``ep.truth`` with
    [(speaker, start, end)] in that file's time."""
    import soundfile as sf

    rng = np.random.default_rng(ep.seed)
    guest_turns: list[tuple[str, np.ndarray]] = []
    for g in ep.guests:
        x = load(voices[g]["file"])
        x = x / _rms(x) * LEVEL
        guest_turns += [(g, p) for p in _pieces(x, rng, 3.0, 8.0)]
    order = rng.permutation(len(guest_turns))
    guest_turns = [guest_turns[i] for i in order]
    guest_sec = sum(len(p) for _, p in guest_turns) / SR
    want_host = guest_sec * ep.host_share / (1 - ep.host_share)
    host_audio = []
    utts = [u for i, u in enumerate(host_utterances(ep.host)) if i not in REFS]
    for i in rng.permutation(len(utts)):
        x = load(utts[i])
        host_audio.append(x / _rms(x) * LEVEL)
        if sum(len(h) for h in host_audio) / SR >= want_host:
            break
    host = np.concatenate(host_audio)[: int(want_host * SR)]
    host_turns = [(ep.host, p) for p in _pieces(host, rng, 2.5, 12.0)]
    # interleave: host, guest, host, guest ... whatever remains at the end
    turns: list[tuple[str, np.ndarray]] = []
    while host_turns or guest_turns:
        if host_turns:
            turns.append(host_turns.pop(0))
        if guest_turns:
            turns.append(guest_turns.pop(0))
    pieces, truth, t = [np.zeros(int(1.5 * SR))], [], 1.5
    for spk, x in turns:
        truth.append((spk, round(t, 4), round(t + len(x) / SR, 4)))
        # half the pauses short (slicing may join two voices), half long (clips of one voice)
        gap = np.zeros(
            int((rng.uniform(0.15, 0.5) if rng.random() < 0.5 else rng.uniform(0.9, 1.8)) * SR)
        )
        pieces += [x, gap]
        t += (len(x) + len(gap)) / SR
    pieces.append(np.zeros(int(1.5 * SR)))
    speech = np.concatenate(pieces)
    mix = speech
    if ep.bed_db is not None:
        music = load(MUSANMIX)[: int(22.4 * SR)]  # the music part of musan-mix, looped
        music = np.concatenate([music, load(SONG)])  # and a song with a singer
        start = int(rng.integers(0, len(music)))
        bed = np.resize(np.roll(music, -start), len(speech))
        mix = speech + bed / _rms(bed) * LEVEL * 10 ** (ep.bed_db / 20)
    mix = mix / max(1.0, np.abs(mix).max() / 0.99)
    ep.truth = truth
    raw_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        clean = Path(tmp) / "clean.wav"
        sf.write(str(clean), mix.astype(np.float32), SR, subtype="FLOAT")
        filt, ext, enc = RENDERINGS[ep.render]
        out = raw_dir / f"{ep.name}.{ext}"
        cmd = ["ffmpeg", "-nostdin", "-v", "error", "-y", "-i", str(clean)]
        cmd += (["-af", filt] if filt else []) + enc + [str(out)]
        subprocess.run(cmd, check=True)
    return out


# -- shows and the plan ---------------------------------------------------------------------


@dataclass
class Show:
    """A corpus: one host, several episodes, run through the chain together."""

    name: str
    host: str
    guest_gender: str  # "same" or "mixed"
    episodes: list[Episode]
    separate: bool = False


def plan(
    *, small: bool = False, seed: int = 0, separate_shows: int = 1, episodes: int = 3
) -> list[Show]:
    """The shows of the benchmark: female and male hosts x same-gender and mixed guests
    (``small``: one female-host show with female guests, two episodes), and the first
    ``separate_shows`` of them again through ``separate``."""
    voices = pool_voices()
    rng = np.random.default_rng(seed)
    guests = {
        g: [s for s, v in voices.items() if v["half"] == "guest" and v["gender"] == g] for g in "FM"
    }
    beds = [-10.0, -13.0, -16.0, -20.0, None]
    renders = list(RENDERINGS)
    combos = (
        [("F", FEMALE_HOST, "same")]
        if small
        else [
            ("F", FEMALE_HOST, "same"),
            ("M", MALE_HOSTS[0], "same"),
            ("F", FEMALE_HOST, "mixed"),
            ("M", MALE_HOSTS[2], "mixed"),
        ]
    )
    shows, k = [], 0
    n_eps = 2 if small else episodes
    for gender, host, mix in combos:
        eps = []
        for e in range(n_eps):
            n_guests = int(rng.integers(1, 5)) if not small else 2
            if mix == "same":
                pool = list(guests[gender])
            else:
                other = "M" if gender == "F" else "F"
                pool = list(guests[other]) + list(guests[gender])
            chosen = [str(s) for s in rng.choice(pool, size=n_guests, replace=False)]
            if mix == "mixed" and not any(voices[s]["gender"] != gender for s in chosen):
                chosen[0] = str(rng.choice(guests["M" if gender == "F" else "F"]))
            eps.append(
                Episode(
                    name=f"{gender}{mix}-ep{e}",
                    host=host,
                    guests=tuple(chosen),
                    host_share=float(rng.uniform(0.3, 0.7)),
                    bed_db=beds[k % len(beds)],
                    render=renders[k % len(renders)],
                    seed=seed * 1000 + k,
                )
            )
            k += 1
        shows.append(
            Show(name=f"{gender}-host-{mix}-guests", host=host, guest_gender=mix, episodes=eps)
        )
    for show in shows[:separate_shows]:
        shows.append(
            Show(
                name=show.name + "+separate",
                host=show.host,
                guest_gender=show.guest_gender,
                episodes=show.episodes,
                separate=True,
            )
        )
    return shows


# -- the chain ------------------------------------------------------------------------------


def cli(*args: Any, quiet: bool = True) -> None:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(REPO / "src") + os.pathsep + env.get("PYTHONPATH", "")
    cmd = [sys.executable, "-m", "audioprep", *map(str, args)] + (["-q"] if quiet else [])
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if proc.returncode != 0:
        raise RuntimeError(
            f"audioprep {' '.join(map(str, args))} exited {proc.returncode}:\n{proc.stderr[-3000:]}"
        )


def run_chain(
    show: Show, work: Path, voices: dict[str, dict[str, Any]], filter_args: tuple[str, ...] = ()
) -> Path:
    """Build the show's episodes and run the chain; return the speaker-filter directory."""
    raw = work / "raw"
    truth = {}
    if not (work / "truth.json").exists():
        for ep in show.episodes:
            build_episode(ep, raw, voices)
            truth[ep.name] = ep.truth
        (work / "truth.json").write_text(json.dumps(truth))
    steps: list[tuple[str, list[Any]]] = [
        ("02-convert", ["convert", "--sample-rate", "16000", "--channels", "1"]),
        ("03-trim", ["trim", "--head", "1.0", "--tail", "1.0"]),
    ]
    if show.separate:
        steps.append(("04-separate", ["separate"]))
    steps += [
        ("05-segment", ["segment", "--engine", "ina", "--no-detect-gender"]),
        (
            "06-slice",
            ["slice", "--labels", "speech", "--min-duration", "1.5", "--max-duration", "15"],
        ),
    ]
    if not (work / "01-ingest" / "stage.json").exists():
        cli("ingest", raw, work / "01-ingest")
    prev = work / "01-ingest"
    for name, (stage, *args) in steps:
        if not (work / name / "stage.json").exists():
            cli(stage, prev, work / name, *args, "-j", "1")
        prev = work / name
    out = work / "07-speaker-filter"
    refs = [a for u in host_references(show.host) for a in ("--reference", u)]
    cli("speaker-filter", prev, out, *refs, *filter_args, "-j", "1", "--overwrite")
    return out


# -- scoring --------------------------------------------------------------------------------


def _union(spans: list[tuple[float, float]]) -> list[list[float]]:
    out: list[list[float]] = []
    for s, e in sorted(spans):
        if out and s <= out[-1][1]:
            out[-1][1] = max(out[-1][1], e)
        else:
            out.append([s, e])
    return out


def speech_in(truth: list, spans: list[tuple[float, float]]) -> dict[str, float]:
    """{speaker: seconds of their speech inside the union of ``spans``}."""
    u = _union(spans)
    out: dict[str, float] = {}
    for spk, a, b in truth:
        cov = sum(max(0.0, min(b, e) - max(a, s)) for s, e in u)
        if cov > 0:
            out[spk] = out.get(spk, 0.0) + cov
    return out


def _read(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    return [json.loads(x) for x in path.read_text(encoding="utf-8").splitlines() if x.strip()]


def _episode(record: dict[str, Any]) -> str:
    return Path(record["source"]["path"]).stem


def score_show(work: Path, out: Path, host: str) -> dict[str, Any]:
    """Purity, recall, splits and the threshold curve of one speaker-filter run on one show."""
    truth = json.loads((work / "truth.json").read_text())
    clips = {r["id"]: r for r in _read(work / "06-slice" / "manifest.jsonl")}
    kept = _read(out / "manifest.jsonl")
    decision = json.loads((out / "decision.json").read_text())
    per_ep: dict[str, dict[str, float]] = {}

    def acc(ep: str, key: str, value: float) -> None:
        per_ep.setdefault(ep, {}).setdefault(key, 0.0)
        per_ep[ep][key] += value

    for ep, t in truth.items():
        acc(ep, "host_all", sum(b - a for s, a, b in t if s == host))
    for c in clips.values():
        ep = _episode(c)
        a = c["source_offset"]
        acc(ep, "host_sliced", speech_in(truth[ep], [(a, a + c["duration"])]).get(host, 0.0))
    # slicing's clips overlap nowhere, so the union per episode is the sum
    for r in kept:
        ep = _episode(r)
        a = r["source_offset"]
        sec = speech_in(truth[ep], [(a, a + r["duration"])])
        acc(ep, "kept_speech", sum(sec.values()))
        acc(ep, "kept_host", sec.get(host, 0.0))
    # splits: single-voice clips cut, two-voice clips not cut at the change
    splits = decision.get("turns", {})
    for cid, c in clips.items():
        ep = _episode(c)
        a, d = c["source_offset"], c["duration"]
        inside = [
            (s, max(a, x) - a, min(a + d, y) - a)
            for s, x, y in truth[ep]
            if min(a + d, y) - max(a, x) > 0
        ]
        voices = {}
        for s, x, y in inside:
            voices[s] = voices.get(s, 0.0) + (y - x)
        big = [s for s, sec in voices.items() if sec >= 1.5]
        cut = [t["start"] for t in splits.get(cid, [])[1:]]
        if len(voices) == 1 or (len(big) == 1 and sum(voices.values()) - voices[big[0]] < 0.3):
            acc(ep, "single", 1)
            acc(ep, "false_split", 1.0 if cut else 0.0)
        elif len(big) >= 2:
            # the change is anywhere in the pause between the two voices
            gaps = [
                (y0, x1)
                for (s0, _, y0), (s1, x1, _) in zip(inside, inside[1:], strict=False)
                if s0 != s1
            ]
            acc(ep, "two", 1)
            found = any(any(g0 - 0.3 <= k <= g1 + 0.3 for k in cut) for g0, g1 in gaps)
            acc(ep, "missed", 0.0 if cut else 1.0)
            acc(ep, "found_03", 1.0 if found else 0.0)
    # the curve: every unit (clip, or turn of a split clip) kept at or above a threshold
    units = []
    for cid, c in clips.items():
        if cid not in decision.get("scores", {}):
            continue
        ep, a = _episode(c), c["source_offset"]
        if cid in splits:
            for t in splits[cid]:
                units.append((ep, a + t["start"], a + t["end"], t["score"]))
        else:
            units.append((ep, a, a + c["duration"], decision["scores"][cid]))
    unit_sec = [(s, speech_in(truth[ep], [(x, y)])) for ep, x, y, s in units]
    host_all = sum(v["host_all"] for v in per_ep.values())
    curve = []
    for th in np.round(np.arange(0.50, 0.951, 0.025), 3):
        kh = sum(sec.get(host, 0.0) for s, sec in unit_sec if s >= th)
        ks = sum(sum(sec.values()) for s, sec in unit_sec if s >= th)
        curve.append((float(th), kh / max(ks, 1e-9), kh / max(host_all, 1e-9)))
    return {"episodes": per_ep, "curve": curve, "threshold": decision.get("threshold")}


def summarise(per_ep: dict[str, dict[str, float]]) -> dict[str, float]:
    tot: dict[str, float] = {}
    for v in per_ep.values():
        for k, x in v.items():
            tot[k] = tot.get(k, 0.0) + x
    g = tot.get
    return {
        "purity": g("kept_host", 0) / max(g("kept_speech", 0), 1e-9),
        "recall": g("kept_host", 0) / max(g("host_all", 0), 1e-9),
        "sliced": g("host_sliced", 0) / max(g("host_all", 0), 1e-9),
        "of_sliced": g("kept_host", 0) / max(g("host_sliced", 0), 1e-9),
        "single": g("single", 0),
        "false_splits": g("false_split", 0),
        "two": g("two", 0),
        "missed": g("missed", 0),
        "found_03": g("found_03", 0),
    }


def row(name: str, s: dict[str, float]) -> str:
    return (
        f"| {name} | {s['purity']:.3f} | {s['recall']:.3f} | {s['of_sliced']:.3f} | "
        f"{s['sliced']:.3f} | {int(s['false_splits'])}/{int(s['single'])} | "
        f"{int(s['missed'])}/{int(s['two'])} | {int(s['found_03'])}/{int(s['two'])} |"
    )


HEADER = (
    "| condition | purity | host recall (all) | recall of sliced | sliced | false splits / "
    "single-voice clips | missed changes / two-voice clips | changes found within 0.3 s |\n"
    "| --- | --- | --- | --- | --- | --- | --- | --- |"
)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--small", action="store_true", help="one female-host show, two episodes")
    ap.add_argument("--work", default=None, help="working folder (kept; built shows are reused)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--episodes", type=int, default=3, help="episodes per show")
    ap.add_argument(
        "--separate-shows",
        type=int,
        default=None,
        help="how many shows also run through separate (default: 0 small, 1 full)",
    )
    ap.add_argument("--json", default=None, help="write every figure to this file")
    ap.add_argument("filter_args", nargs="*", help="extra speaker-filter options (after --)")
    args = ap.parse_args(argv)
    if not POOL.is_dir():
        print(f"the voices are not at {POOL}: set AUDIOPREP_SHARED", file=sys.stderr)
        return 2
    sep = args.separate_shows if args.separate_shows is not None else (0 if args.small else 1)
    shows = plan(small=args.small, seed=args.seed, separate_shows=sep, episodes=args.episodes)
    voices = pool_voices()
    work = Path(args.work or tempfile.mkdtemp(prefix="eval-speakers-"))
    results, all_eps, by_bed, by_render = {}, {}, {}, {}
    for show in shows:
        t0 = time.perf_counter()
        base = work / show.name.replace("+separate", "")
        wdir = work / show.name
        if show.separate and (base / "raw").is_dir() and not (wdir / "raw").exists():
            wdir.mkdir(parents=True, exist_ok=True)
            shutil.copytree(base / "raw", wdir / "raw")
            shutil.copy(base / "truth.json", wdir / "truth.json")
        out = run_chain(show, wdir, voices, tuple(args.filter_args))
        res = score_show(wdir, out, show.host)
        results[show.name] = res
        for ep in show.episodes:
            e = res["episodes"].get(ep.name, {})
            key = f"{show.name}/{ep.name}"
            all_eps[key] = e
            if not show.separate:
                bed = "none" if ep.bed_db is None else f"{ep.bed_db:g} dB"
                by_bed.setdefault(bed, {})[key] = e
                by_render.setdefault(ep.render, {})[key] = e
        print(f"{show.name}: {time.perf_counter() - t0:.0f} s", file=sys.stderr)
    print(HEADER)
    for name, res in results.items():
        print(row(name, summarise(res["episodes"])))
    print(row("**all shows**", summarise(all_eps)))
    for bed, eps in sorted(by_bed.items()):
        print(row(f"bed {bed}", summarise(eps)))
    for render, eps in sorted(by_render.items()):
        print(row(render, summarise(eps)))
    print()
    print("recall / purity over thresholds on the stage's own scores (cosine, adapted voice)")
    print("| threshold | " + " | ".join(results) + " |")
    print("| --- |" + " --- |" * len(results))
    for i, (th, _, _) in enumerate(next(iter(results.values()))["curve"]):
        cells = [f"{r['curve'][i][2]:.3f} / {r['curve'][i][1]:.3f}" for r in results.values()]
        print(f"| {th:.3f} | " + " | ".join(cells) + " |")
    print(
        "\nthe run's own thresholds: "
        + ", ".join(f"{n} {r['threshold']}" for n, r in results.items())
    )
    if args.json:
        Path(args.json).write_text(
            json.dumps(
                {
                    "shows": {
                        n: {"summary": summarise(r["episodes"]), **r} for n, r in results.items()
                    },
                    "plan": [
                        [s.name, [e.__dict__ | {"truth": None} for e in s.episodes]] for s in shows
                    ],
                },
                indent=1,
                default=str,
            )
        )
    print(f"\nwork folder: {work}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
