"""speaker-filter with the real Resemblyzer on the real LibriSpeech speakers in ../shared.

The synthetic shows are built here with exact ground truth: a host and two guests (two episodes
with three male voices), utterances with short pauses, music beds at -12, -15 and -18 dB under
the speech and a jingle, then run through convert -> trim -> separate -> segment -> slice.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from audioprep.testing import LIBRI, MUSANMIX, SONG, cli, read_jsonl, require_shared, union_spans

pytestmark = pytest.mark.slow  # real audio through the CLI, or models

SPEAKERS = ("1688", "1998", "2609", "2033", "2414", "3005")
SR = 16000
HOST = "1688"
REFS = (0, 1, 2)  # the host's reference utterances, never in a show


def utterances(speaker: str) -> list:
    return sorted((LIBRI / speaker).glob("*.flac"))


def _load(path, sr=SR):
    raw = subprocess.run(
        [
            "ffmpeg",
            "-nostdin",
            "-v",
            "error",
            "-i",
            str(path),
            "-ac",
            "1",
            "-ar",
            str(sr),
            "-f",
            "f32le",
            "-",
        ],
        capture_output=True,
        check=True,
    ).stdout
    return np.frombuffer(raw, "<f4").astype(np.float64)


def _rms(x):
    return float(np.sqrt(np.mean(x**2)) + 1e-12)


#: episodes: guests, bed level (dB under the speech), whether a jingle plays mid-show
EPISODES = (
    (("2033", "2414"), -12.0, False),  # three male voices
    (("1998", "3005"), -15.0, True),  # a woman and a man, and a jingle
    (("2609", "3005"), -18.0, False),  # three male voices
)


def build_show(
    path,
    guests,
    bed_db,
    jingle,
    *,
    seed,
    host=HOST,
    host_utts=None,
    guest_utts=4,
    pause=(0.25, 0.7),
    lead=1.5,
    jingle_at=(3.0, 8.0),
):
    """Write a 16 kHz show to ``path``; return [(speaker, start, end)] of every utterance."""
    import soundfile as sf

    rng = np.random.default_rng(seed)
    hu = [u for i, u in enumerate(utterances(host)) if i not in REFS]
    hu = [hu[i] for i in rng.permutation(len(hu))][: host_utts or len(hu)]
    gu = {g: [utterances(g)[i] for i in rng.permutation(10)[:guest_utts]] for g in guests}
    turns, gi = [], 0
    while hu or any(gu.values()):
        if hu:
            turns.append((host, hu.pop()))
        g = guests[gi % len(guests)]
        gi += 1
        if gu[g]:
            turns.append((g, gu[g].pop()))
        elif gu[guests[gi % len(guests)]]:
            g = guests[gi % len(guests)]
            turns.append((g, gu[g].pop()))
    level = 0.05  # speech RMS, about -26 dBFS
    pieces, truth, t = [np.zeros(int(lead * SR))], [], lead
    for k, (spk, f) in enumerate(turns):
        x = _load(f)
        x = x / _rms(x) * level
        truth.append((spk, round(t, 6), round(t + len(x) / SR, 6)))
        pieces.append(x)
        t += len(x) / SR
        gap = np.zeros(int(rng.uniform(*pause) * SR))
        pieces.append(gap)
        t += len(gap) / SR
        if jingle and k == len(turns) // 2:  # a 5 s station ident: a song with its singer
            song = _load(SONG)[int(jingle_at[0] * SR) : int(jingle_at[1] * SR)]
            song = song / _rms(song) * level
            pieces += [song, np.zeros(int(0.5 * SR))]
            t += (len(song) + int(0.5 * SR)) / SR
    pieces.append(np.zeros(int(lead * SR)))
    speech = np.concatenate(pieces)
    music = _load(MUSANMIX)[: int(22.4 * SR)]  # the music part of musan-mix, looped
    bed = np.resize(music, len(speech))
    bed = bed / _rms(bed) * level * 10 ** (bed_db / 20)
    mix = speech + bed
    mix = mix / max(1.0, np.abs(mix).max() / 0.99)
    sf.write(str(path), mix.astype(np.float32), SR, subtype="PCM_16")
    return truth


def speech_in(truth, spans):
    """{speaker: seconds of their speech inside the union of ``spans``}."""
    out = {}
    for spk, a, b in truth:
        cov = sum(max(0.0, min(b, e) - max(a, s)) for s, e in union_spans(spans))
        out[spk] = out.get(spk, 0.0) + cov
    return out


def clip_spans(out_dir):
    """{episode: [(start, end)]} of the kept clips, in the ingested file's time."""
    spans = {}
    for r in read_jsonl(Path(out_dir) / "manifest.jsonl"):
        ep = Path(r["source"]["path"]).stem
        spans.setdefault(ep, []).append((r["source_offset"], r["source_offset"] + r["duration"]))
    return spans


def show_scores(work, out_dir, host=HOST):
    """Purity (host share of the speech in kept clips), host recall, and what slicing covered."""
    truth = json.loads((work / "truth.json").read_text())
    sliced, kept = clip_spans(work / "06-slice"), clip_spans(out_dir)
    host_all = host_sliced = host_kept = kept_speech = kept_host = 0.0
    for ep, t in truth.items():
        host_all += sum(b - a for s, a, b in t if s == host)
        host_sliced += speech_in(t, sliced.get(ep, [])).get(host, 0.0)
        host_kept += speech_in(t, kept.get(ep, [])).get(host, 0.0)
        for s, e in kept.get(ep, []):  # clip by clip: speech kept twice counts twice
            seconds = speech_in(t, [(s, e)])
            kept_speech += sum(seconds.values())
            kept_host += seconds.get(host, 0.0)
    return {
        "purity": kept_host / max(kept_speech, 1e-9),
        "recall": host_kept / host_all,
        "sliced": host_sliced / host_all,
        "of_sliced": host_kept / max(host_sliced, 1e-9),
    }


@pytest.fixture(scope="module")
def shows(tmp_path_factory):
    """Three short shows through convert -> trim -> separate -> segment -> slice (minutes)."""
    require_shared()
    work = tmp_path_factory.mktemp("shows")
    (work / "shows").mkdir()
    truth = {}
    for i, (guests, bed, jingle) in enumerate(EPISODES):
        truth[f"ep{i}"] = build_show(
            work / "shows" / f"ep{i}.wav", guests, bed, jingle, seed=i, host_utts=4, guest_utts=2
        )
    (work / "truth.json").write_text(json.dumps(truth))
    steps = [
        ("01-ingest", ["ingest", work / "shows"]),
        ("02-convert", ["convert", "--sample-rate", "16000", "--channels", "1"]),
        ("03-trim", ["trim", "--head", "1.0", "--tail", "1.0"]),
        ("04-separate", ["separate", "--engine", "spleeter"]),  # its figures are Spleeter's
        ("05-segment", ["segment", "--engine", "ina", "--no-detect-gender"]),
        (
            "06-slice",
            [
                "slice",
                "--labels",
                "speech",
                "--min-duration",
                "1.5",
                "--max-duration",
                "15",
                "--merge-gap",
                "0.3",
                "--pad",
                "0.1",
            ],
        ),
    ]
    prev = None
    for name, (stage, *args) in steps:
        where = [work / name] if prev is None else [prev, work / name]
        if prev is None:
            cli(stage, *args, *where, "-q")
        else:
            cli(stage, *where, *args, "-q", "-j", "1")
        prev = work / name
    return work


def host_refs():
    return [a for i, u in enumerate(utterances(HOST)) if i in REFS for a in ("--reference", u)]


def test_shows_at_defaults_keep_the_host_and_only_the_host(shows) -> None:
    out = shows / "07-speaker-filter"
    cli("speaker-filter", shows / "06-slice", out, *host_refs(), "-q", "-j", "1")
    got = show_scores(shows, out)
    print("defaults", got)
    assert got["purity"] >= 0.98, got
    assert got["of_sliced"] >= 0.90, got
    decision = json.loads((out / "decision.json").read_text())
    assert decision["calibration"]["method"] == "s-norm"
    assert decision["adapt"]["enabled"] and decision["adapt"]["enrolment"]
    assert set(decision["scores_initial"]) == set(decision["scores"])
    # every clip, kept or rejected, can be found in the episode
    kept = read_jsonl(out / "manifest.jsonl")
    assert all("source_offset" in r for r in kept)
    for r in read_jsonl(out / "rejected.jsonl"):
        assert "source_offset" in r["record"], r


def test_shows_without_adaptation_lose_the_host(shows) -> None:
    out = shows / "07-no-adapt"
    cli(
        "speaker-filter",
        shows / "06-slice",
        out,
        *host_refs(),
        "--no-adapt",
        "--threshold",
        "0.75",
        "-q",
        "-j",
        "1",
    )
    got = show_scores(shows, out)
    print("no-adapt, fixed 0.75", got)
    decision = json.loads((out / "decision.json").read_text())
    assert decision["adapt"]["enrolment"] == [] and decision["calibration"]["method"] == "fixed"
    assert got["purity"] >= 0.98


def test_shows_dominant_voice(shows) -> None:
    out = shows / "07-dominant"
    cli("speaker-filter", shows / "06-slice", out, "--enrol", "dominant", "-q", "-j", "1")
    got = show_scores(shows, out)
    print("dominant", got)
    assert got["purity"] >= 0.95 and got["recall"] >= 0.85, got
    decision = json.loads((out / "decision.json").read_text())
    clusters = decision["clusters"]
    assert len(clusters) >= 5  # host and five guests, not one cluster of men
    assert all(
        {"cluster", "size", "seconds", "mean_similarity", "samples"} <= set(c) for c in clusters
    )
    assert clusters[0]["seconds"] == max(c["seconds"] for c in clusters)
    # another cluster by number: a guest, and none of the host
    out2 = shows / "07-cluster1"
    cli("speaker-filter", shows / "06-slice", out2, "--enrol", "cluster:1", "-q", "-j", "1")
    assert show_scores(shows, out2)["recall"] < 0.1


def test_source_offset_after_trim_separate_segment_slice(shows) -> None:
    trim = {r["id"]: r for r in read_jsonl(shows / "03-trim" / "manifest.jsonl")}
    clips = read_jsonl(shows / "06-slice" / "manifest.jsonl")
    assert clips
    for clip in clips:
        parent = trim[clip["parent"]]
        expected = round(parent["trim"]["head"] * SR) + clip["slice"]["start_sample"]
        assert round(clip["source_offset"] * SR) == expected, clip
    # and the samples themselves: trim -> slice (no model in between) cut the ingested audio
    ingested = read_jsonl(shows / "01-ingest" / "manifest.jsonl")[0]
    one = shows / "one"
    cli("trim", shows / "02-convert", one / "t", "--head", "1.37", "-q")
    cli("slice", one / "t", one / "s", "--chunk", "3.3", "-q")
    import soundfile as sf

    src, _ = sf.read(str(shows / "02-convert" / "audio" / f"{ingested['id']}.wav"), dtype="int16")
    for clip in read_jsonl(one / "s" / "manifest.jsonl"):
        if clip["parent"] != ingested["id"]:
            continue
        got, _ = sf.read(str(one / "s" / clip["audio"]), dtype="int16")
        a = round(clip["source_offset"] * SR)
        assert np.array_equal(got, src[a : a + len(got)]), clip["id"]


def test_reference_mode_each_speaker_in_turn(tmp_path) -> None:
    """One measurement pass over 42 clean utterances, then each speaker as the target."""
    require_shared()
    from audioprep.core.stage import DecideContext, ItemContext, WorkerContext
    from audioprep.stages.speaker_filter import SpeakerFilterStage
    from audioprep.testing import make_manifest_dir

    corpus = make_manifest_dir(tmp_path / "raw", [u for s in SPEAKERS for u in utterances(s)[3:]])
    records = read_jsonl(corpus / "manifest.jsonl")
    stage = SpeakerFilterStage(SpeakerFilterStage.Params(references=("x",)))
    stage.setup(WorkerContext())
    ctxs = [ItemContext(stage_name=stage.name, in_dir=corpus, out_dir=tmp_path) for _ in records]
    batched = stage.measure_batch(records, ctxs)
    measurements = {r["id"]: m for r, m in zip(records, batched, strict=True)}
    # batching across items gives the embeddings of one-by-one measuring
    for r, ctx in list(zip(records, ctxs, strict=True))[::7]:
        alone = stage.measure(r, ctx)
        assert np.allclose(alone["embedding"], measurements[r["id"]]["embedding"], atol=1e-5)
    figures = {}
    for target in SPEAKERS:
        refs = tuple(str(u) for u in utterances(target)[:3])
        st = SpeakerFilterStage(SpeakerFilterStage.Params(references=refs))
        decision = st.decide(measurements, DecideContext(out_dir=tmp_path))
        kept = {i for i, k in decision["keep"].items() if k}
        truth = {r["id"] for r in records if r["id"].startswith(target)}
        figures[target] = (len(kept & truth) / max(1, len(kept)), len(kept & truth) / len(truth))
    print(figures)
    assert all(p >= 0.95 and r >= 0.95 for p, r in figures.values()), figures


def two_voices(tmp_path, first, second, *, pause=0.4):
    """One clip: an utterance of ``first``, a pause, one of ``second``; and the change (s)."""
    import soundfile as sf

    a, b = _load(first), _load(second)
    a, b = a / _rms(a) * 0.05, b / _rms(b) * 0.05
    x = np.concatenate([a, np.zeros(int(pause * SR)), b])
    path = tmp_path / "two-voices.wav"
    sf.write(str(path), x.astype(np.float32), SR, subtype="PCM_16")
    return path, len(a) / SR + pause / 2


@pytest.mark.parametrize("mixed", ["split", "reject"])
def test_a_clip_with_two_voices_is_split_or_rejected(tmp_path, mixed) -> None:
    require_shared()
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    clip, change = two_voices(corpus, utterances("2033")[3], utterances("2414")[4])
    for s in SPEAKERS:  # other clips: the corpus the decision is calibrated on
        for f in utterances(s)[6:9]:
            shutil.copy(f, corpus / f.name)
    cli("ingest", corpus, tmp_path / "raw", "-q")
    refs = [a for u in utterances("2033")[:3] for a in ("--reference", u)]
    out = tmp_path / "out"
    cli("speaker-filter", tmp_path / "raw", out, *refs, "--mixed", mixed, "-q", "-j", "1")
    kept = [r for r in read_jsonl(out / "manifest.jsonl") if r["id"].startswith("two-voices")]
    rejected = [r for r in read_jsonl(out / "rejected.jsonl") if r["id"].startswith("two-voices")]
    assert rejected and "contains another voice from" in rejected[0]["reason"]
    if mixed == "reject":
        assert not kept
        start = float(rejected[0]["reason"].split("from ")[1].split(" to ")[0])
        assert abs(start - change) <= 0.5, (rejected[0]["reason"], change)
        return
    assert len(kept) == 1, kept
    part = kept[0]
    assert part["speaker_split"]["start"] == 0.0
    assert abs(part["speaker_split"]["end"] - change) <= 0.3, (part["speaker_split"], change)
    assert part["source_offset"] == 0.0 and part["parent"].startswith("two-voices")
    other = rejected[0]["record"]
    assert abs(other["source_offset"] - change) <= 0.3
    # the split, with both sides' scores, is in decision.json
    decision = json.loads((out / "decision.json").read_text())
    (split,) = [c for c in decision["splits"][part["parent"]] if c["confirmed"]]
    assert split["before"]["keep"] and not split["after"]["keep"]
    assert split["before"]["score"] > split["after"]["score"]


def test_dominant_voice_without_references(tmp_path) -> None:
    require_shared()
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    host = utterances("2033")
    guests = [utterances(s)[i] for i, s in enumerate(("1688", "1998", "2609", "2414", "3005"))]
    for f in host + guests:
        shutil.copy(f, corpus / f.name)
    cli("ingest", corpus, tmp_path / "raw", "-q")
    cli("speaker-filter", tmp_path / "raw", tmp_path / "out", "--enrol", "dominant", "-q")
    kept = [r["id"] for r in read_jsonl(tmp_path / "out" / "manifest.jsonl")]
    assert sum(k.startswith("2033-") for k in kept) >= 9
    assert sum(not k.startswith("2033-") for k in kept) <= 1
    decision = json.loads((tmp_path / "out" / "decision.json").read_text())
    assert decision["enrol"] == "dominant" and decision["dominant_cluster_size"] >= 9


def test_bad_options(tmp_path) -> None:
    require_shared()
    cli("ingest", utterances("1688")[0], tmp_path / "raw", "-q")
    assert cli("speaker-filter", tmp_path / "raw", tmp_path / "o", check=False).returncode == 2
    proc = cli(
        "speaker-filter",
        tmp_path / "raw",
        tmp_path / "o",
        "--enrol",
        "dominant",
        "--threshold",
        "high",
        check=False,
    )
    assert proc.returncode == 2 and "not a number or auto" in proc.stderr
    proc = cli(
        "speaker-filter", tmp_path / "raw", tmp_path / "o", "--enrol", "cluster:x", check=False
    )
    assert proc.returncode == 2 and "cluster:N" in proc.stderr
    proc = cli(
        "speaker-filter", tmp_path / "raw", tmp_path / "o", "--enrol", "cluster:7", check=False
    )
    assert proc.returncode == 2 and "only 1 clusters" in proc.stderr
    # the sentence's "see decision.json" holds: the clusters are there to choose from
    decision = json.loads((tmp_path / "o" / "decision.json").read_text())
    assert len(decision["clusters"]) == 1 and "only 1 clusters" in decision["error"]
    # and the embeddings were kept: the next --enrol does not embed again
    cli("speaker-filter", tmp_path / "raw", tmp_path / "o", "--enrol", "cluster:0", "--overwrite")
    measured = read_jsonl(tmp_path / "o" / ".measure.jsonl")[1:]
    assert measured and all(m["records"][0].get("cached") for m in measured), measured


def test_enrol_from_clips_of_a_manifest(tmp_path) -> None:
    require_shared()
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    for s in ("1998", "3005"):
        for f in utterances(s)[:5]:
            shutil.copy(f, corpus / f.name)
    cli("ingest", corpus, tmp_path / "raw", "-q")
    ids = [
        r["id"]
        for r in read_jsonl(tmp_path / "raw" / "manifest.jsonl")
        if r["id"].startswith("3005-")
    ][:2]
    cli(
        "speaker-filter",
        tmp_path / "raw",
        tmp_path / "out",
        "--reference-manifest",
        tmp_path / "raw",
        "--reference-ids",
        ",".join(ids),
        "-q",
    )
    kept = [r["id"] for r in read_jsonl(tmp_path / "out" / "manifest.jsonl")]
    assert sorted(k[:4] for k in kept) == ["3005"] * 5
    proc = cli(
        "speaker-filter",
        tmp_path / "raw",
        tmp_path / "o2",
        "--reference-manifest",
        tmp_path / "raw",
        "--reference-ids",
        "nope",
        check=False,
    )
    assert proc.returncode == 2 and "nope" in proc.stderr


def _render(src, dst, seed):
    """``src`` through mp3 then AAC at bitrates chosen by ``seed``, under a music bed."""
    import soundfile as sf

    rng = np.random.default_rng(seed)
    x = _load(src)
    x = x / _rms(x) * 0.05
    bed = np.resize(_load(MUSANMIX)[: int(22.4 * SR)], len(x))
    start = int(rng.integers(0, len(bed)))
    bed = np.roll(bed, -start)
    x = x + bed / _rms(bed) * 0.05 * 10 ** (rng.uniform(-20, -10) / 20)
    wav = dst.with_suffix(".in.wav")
    sf.write(str(wav), x.astype(np.float32), SR, subtype="FLOAT")
    mp3 = dst.with_suffix(".mp3")
    rate = int(rng.choice([64, 96, 128]))
    subprocess.run(
        ["ffmpeg", "-nostdin", "-v", "error", "-y", "-i", str(wav), "-b:a", f"{rate}k", str(mp3)],
        check=True,
    )
    rate = int(rng.choice([64, 96, 160]))
    subprocess.run(
        ["ffmpeg", "-nostdin", "-v", "error", "-y", "-i", str(mp3), "-c:a", "aac"]
        + ["-b:a", f"{rate}k", str(dst)],
        check=True,
    )
    wav.unlink()
    mp3.unlink()


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_a_single_voice_clip_through_two_codecs_and_a_bed_is_never_split(tmp_path, seed) -> None:
    """A property over seeds (three: each is a speaker-filter run): one voice, mp3 then AAC,
    a music bed at -10 ... -20 dB; the corpus around it holds other voices to calibrate on."""
    require_shared()
    rng = np.random.default_rng(seed)
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    host = utterances(HOST)
    for i in (3, 4, 5, 6):
        _render(host[i], corpus / f"host-{i}.m4a", seed * 10 + i)
    for s in ("1998", "2033", "2414", "3005"):
        for f in utterances(s)[int(rng.integers(3, 8)) :][:2]:
            shutil.copy(f, corpus / f.name)
    target = host[int(rng.integers(7, 10))]
    _render(target, corpus / "single.m4a", seed)
    cli("ingest", corpus, tmp_path / "raw", "-q")
    out = tmp_path / "out"
    cli("speaker-filter", tmp_path / "raw", out, *host_refs(), "-q", "-j", "1")
    decision = json.loads((out / "decision.json").read_text())
    single = [i for i in decision["scores"] if i.startswith("single")]
    assert single
    for i in single:
        assert i not in decision["turns"], decision["splits"].get(i)
    kept = [r for r in read_jsonl(out / "manifest.jsonl") if r["id"].startswith("single")]
    assert all("speaker_split" not in r for r in kept)
    for r in read_jsonl(out / "rejected.jsonl"):
        assert "contains another voice" not in r["reason"], r


def _eval_speakers():
    import importlib.util
    import sys

    from audioprep.testing import REPO

    spec = importlib.util.spec_from_file_location(
        "eval_speakers", REPO / "scripts" / "eval_speakers.py"
    )
    module = importlib.util.module_from_spec(spec)
    sys.modules["eval_speakers"] = module  # its dataclasses look their module up
    spec.loader.exec_module(module)
    return module


def test_benchmark_smallest_show_female_host_female_guests(tmp_path) -> None:
    """scripts/eval_speakers.py --small: a female host, female guests, two episodes rendered
    differently under beds, through trim -> segment -> slice -> speaker-filter (defaults)."""
    require_shared()
    ev = _eval_speakers()
    (show,) = ev.plan(small=True, separate_shows=0)
    assert show.host == ev.FEMALE_HOST
    voices = ev.pool_voices()
    assert all(voices[g]["gender"] == "F" for ep in show.episodes for g in ep.guests)
    out = ev.run_chain(show, tmp_path, voices)
    got = ev.summarise(ev.score_show(tmp_path, out, show.host)["episodes"])
    print(got)
    assert got["purity"] >= 0.98, got
    assert got["of_sliced"] >= 0.9, got
    assert got["false_splits"] == 0 and got["single"] > 0, got


def _long_item(path, hours):
    """A FLAC of ``hours``: silence with one LibriSpeech utterance every five minutes, written
    block by block (the test itself holds no hour of audio)."""
    import soundfile as sf

    utts = [_load(u) for u in utterances(HOST)[3:6]]
    block = SR * 300
    with sf.SoundFile(str(path), "w", SR, 1, subtype="PCM_16", format="FLAC") as f:
        for k in range(int(hours * 12)):
            x = np.zeros(block)
            u = utts[k % len(utts)]
            x[SR : SR + len(u)] = u / _rms(u) * 0.05
            f.write(x.astype(np.float32))


_PEAK = """
import resource, sys
from audioprep.cli.app import app
try:
    app(sys.argv[1:], prog_name="audioprep")
except SystemExit:
    pass
print("PEAK", max(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
                  resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss))
"""


def test_memory_of_one_long_item_does_not_grow_with_its_length(tmp_path) -> None:
    """Issue 28 item 6: 17.3 GB for one 3-hour file. Peak RSS of the whole run (the process and
    its workers) on a 3-hour item stays within the 1-hour item's plus a constant."""
    import sys

    require_shared()
    peaks = {}
    for hours in (1, 3):
        folder = tmp_path / f"h{hours}"
        folder.mkdir()
        _long_item(folder / f"long{hours}.flac", hours)
        cli("ingest", folder, tmp_path / f"in{hours}", "-q")
        proc = subprocess.run(
            [
                sys.executable,
                "-c",
                _PEAK,
                "speaker-filter",
                str(tmp_path / f"in{hours}"),
                str(tmp_path / f"out{hours}"),
                *map(str, host_refs()),
                "--threshold",
                "0.7",
                "-q",
                "-j",
                "1",
            ],
            capture_output=True,
            text=True,
            check=False,
        )
        assert "PEAK" in proc.stdout, proc.stderr[-2000:]
        peaks[hours] = int(proc.stdout.split("PEAK")[1].split()[0]) / 1024  # MB
        (f,) = (folder).glob("*.flac")
        f.unlink()
        kept = read_jsonl(tmp_path / f"out{hours}" / "manifest.jsonl")
        assert len(kept) == 1 and kept[0]["voiced_seconds"] > 30 * hours, kept
    print(peaks)
    assert peaks[3] <= peaks[1] + 200, peaks


def test_an_empty_corpus_is_an_empty_result_not_a_traceback(tmp_path: Path) -> None:
    from audioprep.testing import cli, make_manifest_dir

    src = make_manifest_dir(tmp_path / "in", [])
    proc = cli("speaker-filter", src, tmp_path / "out", "--enrol", "dominant", "-q", check=False)
    assert proc.returncode == 0, proc.stderr
    assert "Traceback" not in proc.stderr
    assert (tmp_path / "out" / "stage.json").is_file()
    assert (tmp_path / "out" / "manifest.jsonl").read_text() == ""
