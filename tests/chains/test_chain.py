"""Chains, presets, exports, reports: `audioprep run` end to end on ../shared, and the rest."""

from __future__ import annotations

import csv
import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from audioprep.chains.plan import load_chain, plan
from audioprep.core.stage import kind_of
from audioprep.errors import UsageError
from audioprep.testing import LIBRI, MODELS, REPO, SHARED, cli, read_jsonl, require_shared

STAGES = [
    "01-ingest",
    "02-convert",
    "03-dedupe",
    "04-trim",
    "05-segment",
    "06-slice",
    "07-quality",
    "08-denoise",
    "09-speaker-filter",
    "10-loudness",
    "11-transcribe",
    "12-speakers",
]
LAST = STAGES[-1]


def _env() -> dict[str, str]:
    return {**os.environ, "AUDIOPREP_SHARED": str(SHARED), "AUDIOPREP_MODEL_DIR": str(MODELS)}


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """`make demo` into a fresh folder: run the preset, export, report."""
    require_shared()
    if not shutil.which("make"):
        pytest.skip("make is not installed")
    out = tmp_path_factory.mktemp("demo") / "demo-out"
    proc = subprocess.run(
        ["make", "-C", str(REPO), "demo"],
        env={**_env(), "DEMO_OUT": str(out), "AUDIOPREP": f"{REPO}/.venv/bin/audioprep"},
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return out


def _stage(out: Path, name: str) -> tuple[dict, list[dict]]:
    stage = json.loads((out / name / "stage.json").read_text())
    records = read_jsonl(out / name / "manifest.jsonl")
    for r in records:
        assert (out / name / r["audio"]).is_file(), (name, r["id"])
    return stage, records


@pytest.mark.slow
def test_demo_runs_the_preset_and_every_stage_did_its_part(demo: Path) -> None:
    assert sorted(p.name for p in demo.iterdir() if p.name[:2].isdigit()) == STAGES
    stage, ingested = _stage(demo, "01-ingest")
    assert stage["items_ok"] == len(ingested) == 60 and stage["items_failed"] == 0
    _, converted = _stage(demo, "02-convert")
    assert {(r["sample_rate"], r["channels"]) for r in converted} == {(22050, 1)}
    _, deduped = _stage(demo, "03-dedupe")
    assert [r["id"] for r in deduped] == [r["id"] for r in converted]  # no duplicate in the demo
    _, trimmed = _stage(demo, "04-trim")
    by_id = {r["id"]: r for r in converted}
    for r in trimmed:
        assert r["duration"] == pytest.approx(by_id[r["id"]]["duration"] - 0.5, abs=1e-3)
        assert r["offset"] == pytest.approx(0.25, abs=1 / 22050)  # a whole sample
    _, segmented = _stage(demo, "05-segment")
    assert all(r["segments"] and "speech_seconds" in r for r in segmented)
    speechless = [r for r in segmented if r["source"]["comment"] == 0]
    assert any("music" in r["id"] or "audio_example" in r["id"] for r in speechless)
    stage, clips = _stage(demo, "06-slice")
    assert all(1.5 <= c["duration"] <= 15.0 + 1e-6 and c["label"] == "speech" for c in clips)
    assert all(c["parent"] in {r["id"] for r in segmented} for c in clips)
    assert stage["records_out"] == len(clips) > 60
    _, scored = _stage(demo, "07-quality")
    dropped = read_jsonl(demo / "07-quality" / "rejected.jsonl")
    assert len(scored) + len(dropped) == len(clips) and len(scored) >= 0.9 * len(clips)
    assert all(r["quality"]["bandwidth_hz"] > 6000 for r in scored)
    _, denoised = _stage(demo, "08-denoise")
    assert [r["id"] for r in denoised] == [c["id"] for c in scored]
    assert all(r["denoise"]["filters"] for r in denoised)
    stage, kept = _stage(demo, "09-speaker-filter")
    assert kept and all(r["speaker_similarity"] >= 0.75 for r in kept)
    # the target voice is speaker 1688: nearly everything kept is theirs, most of theirs kept
    theirs = [r for r in kept if r["id"].startswith("1688-")]
    assert len(theirs) >= 0.9 * len(kept)
    all_1688 = [c for c in clips if c["id"].startswith("1688-")]
    assert len(theirs) >= 0.8 * len(all_1688)
    rejected = read_jsonl(demo / "09-speaker-filter" / "rejected.jsonl")
    assert len(rejected) + len(kept) == len(denoised)
    _, loud = _stage(demo, "10-loudness")
    assert [r["id"] for r in loud] == [r["id"] for r in kept]
    for r in loud:
        info = r["loudness"]
        assert info["output_true_peak_db"] <= -1.0
        assert info["limited"] or abs(info["output_lufs"] - -23.0) < 0.01
    # transcribe (tiny.en, English, annotate-only): every clip kept, nearly all with text
    stage, texts = _stage(demo, "11-transcribe")
    assert [r["id"] for r in texts] == [r["id"] for r in loud]
    assert all(r["language"] == "en" and isinstance(r["text"], str) for r in texts)
    assert sum(1 for r in texts if len(r["text"].split()) >= 2) >= 0.9 * len(texts)
    # speakers: the host's voice is spk00 and carries the reference's name
    _, voiced = _stage(demo, LAST)
    assert [r["id"] for r in voiced] == [r["id"] for r in texts]
    host = [r for r in voiced if r["id"].startswith("1688-")]
    assert {r["speaker"] for r in host} == {"spk00"}
    assert {r.get("speaker_name") for r in host} == {"host"}
    assert (demo / LAST / "speakers.json").is_file()


@pytest.mark.slow
def test_the_demo_export_loads_with_datasets(demo: Path) -> None:
    datasets = pytest.importorskip("datasets")
    kept = read_jsonl(demo / LAST / "manifest.jsonl")
    ds = datasets.load_dataset("audiofolder", data_dir=str(demo / "export-hf"), split="train")
    assert len(ds) == len(kept)
    assert sorted(ds["id"]) == sorted(r["id"] for r in kept)
    row = ds[0]
    assert row["audio"]["sampling_rate"] == 22050
    expected = next(r for r in kept if r["id"] == row["id"])
    assert len(row["audio"]["array"]) == pytest.approx(expected["duration"] * 22050, abs=2)
    assert row["speaker_similarity"] == pytest.approx(expected["speaker_similarity"])
    # the demo transcribes: its export carries the text
    assert "transcription" in ds.column_names
    assert sorted(ds["transcription"]) == sorted(r["text"] for r in kept)


def _chromium() -> str:
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if not found:
        pytest.skip("chromium is not installed (make test installs it with apt-get)")
    return found


def render(html: Path, tmp: Path, *, screenshot: Path | None = None) -> tuple[str, list[str]]:
    """Load a page in headless chromium: the DOM after its scripts ran, and console lines."""
    args = [
        _chromium(),
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        f"--user-data-dir={tmp / 'chromium-profile'}",
        "--enable-logging=stderr",
        "--v=0",
        "--dump-dom",
        html.as_uri(),
    ]
    proc = subprocess.run(args, capture_output=True, text=True, timeout=120)
    console = [ln for ln in proc.stderr.splitlines() if ":CONSOLE" in ln]
    if screenshot is not None:
        shot = [a for a in args if a != "--dump-dom"]
        shot.insert(-1, f"--screenshot={screenshot}")
        shot.insert(-1, "--window-size=1100,2400")
        subprocess.run(shot, capture_output=True, timeout=120)
    return proc.stdout, console


@pytest.mark.slow
def test_the_demo_report_renders_in_a_real_browser(demo: Path, tmp_path: Path) -> None:
    page = demo / LAST / "report.html"
    numbers = json.loads((demo / LAST / "report.json").read_text())
    kept = read_jsonl(demo / LAST / "manifest.jsonl")
    assert numbers["items"] == len(kept)
    assert numbers["hours"] == pytest.approx(sum(r["duration"] for r in kept) / 3600, abs=1e-5)
    assert numbers["speaker_similarity"]["kept"]["counts"]
    text = page.read_text()
    assert "http://" not in text and "https://" not in text  # self-contained
    dom, console = render(page, tmp_path)
    assert console == [], console
    assert 'data-rendered="ok"' in dom
    # six samples, and three players per voice in the speakers section (each with its picture)
    voices = json.loads((demo / LAST / "speakers.json").read_text())["speakers"]
    players = 6 + sum(min(3, len(v["samples"])) for v in voices)
    assert dom.count('src="data:image/png;base64,') == players
    assert "Speaker similarity" in dom and "Hours per label" in dom  # loudness: the funnel
    assert "<h2>Speakers</h2>" in dom
    # issue 27: the explorer is there, and none of the defects the demo's report showed
    assert 'data-ready="ok"' in dom and 'data-score="quality.snr_db"' in dom
    assert "threshold (red line): 0.75" in dom and "(red line): None" not in dom
    assert ">nan<" not in dom
    # the funnel of the whole chain (demo.sh reports the work folder too)
    funnel = json.loads((demo / "report.json").read_text())
    assert [s["directory"] for s in funnel["steps"]] == STAGES
    spk = funnel["steps"][STAGES.index("09-speaker-filter")]
    assert spk["rejected"] > 0 and spk["reasons"][0]["reason"].startswith("speaker similarity")
    dom, console = render(demo / "report.html", tmp_path)
    assert console == [] and 'data-rendered="ok"' in dom
    assert dom.count('<tr class="step">') == len(STAGES) and "<h2>Quality</h2>" in dom
    assert "<h2>Loudness</h2>" in dom


@pytest.mark.slow
def test_info_prints_the_same_summary(demo: Path) -> None:
    proc = cli("info", demo / "06-slice")
    clips = read_jsonl(demo / "06-slice" / "manifest.jsonl")
    assert f"items        {len(clips)}" in proc.stdout and "hours/label" in proc.stdout
    numbers = json.loads(cli("info", demo / "06-slice", "--json").stdout)
    assert numbers["items"] == len(clips) and numbers["hours_per_label"]["speech"] > 0


@pytest.mark.slow
def test_other_export_formats(demo: Path, tmp_path: Path) -> None:
    src = demo / LAST
    kept = read_jsonl(src / "manifest.jsonl")
    cli("export", src, tmp_path / "nemo", "--format", "nemo")
    lines = read_jsonl(tmp_path / "nemo" / "manifest.json")
    assert [ln["duration"] for ln in lines] == [r["duration"] for r in kept]
    assert all((tmp_path / "nemo" / ln["audio_filepath"]).is_file() for ln in lines)
    assert all(ln["offset"] == 0.0 for ln in lines)
    assert [ln["text"] for ln in lines] == [r["text"] for r in kept]
    cli("export", src, tmp_path / "lj", "--format", "ljspeech")
    with open(tmp_path / "lj" / "metadata.csv", newline="", encoding="utf-8") as fh:
        rows = list(csv.reader(fh, delimiter="|"))  # a plain CSV reader: three columns
    assert all(len(r) == 3 for r in rows)
    assert [r[0] for r in rows] == [r["id"] for r in kept]
    assert [r[1] for r in rows] == [" ".join(r["text"].split()) for r in kept]
    assert all((tmp_path / "lj" / "wavs" / f"{r['id']}.wav").is_file() for r in kept)
    cli("export", src, tmp_path / "csv", "--format", "csv")
    header = (tmp_path / "csv" / "metadata.csv").read_text().splitlines()[0]
    assert header.startswith("file,item_id,duration,id,author,title,channel_url,publish_date")
    # an export never writes over something without being asked
    proc = cli("export", src, tmp_path / "csv", "--format", "csv", check=False)
    assert proc.returncode == 2 and "--overwrite" in proc.stderr
    # LJSpeech wants wav: mp3 input is refused before anything is written
    proc = cli("export", demo / "01-ingest", tmp_path / "lj2", "--format", "ljspeech", check=False)
    assert proc.returncode == 2 and "convert" in proc.stderr and not (tmp_path / "lj2").exists()


# -- the chain logic on a small, fast chain ---------------------------------------------------
def _small_config(tmp_path: Path, *, head: float = 0.2, chunk: float = 2.0) -> Path:
    flacs = sorted((LIBRI / "1998").glob("*.flac"))[:4]
    src = tmp_path / "src"
    src.mkdir(exist_ok=True)
    for f in flacs:
        if not (src / f.name).exists():
            os.link(f, src / f.name)
    config = tmp_path / "small.yaml"
    config.write_text(
        "jobs: 1\n"
        "stages:\n"
        "  - ingest: {sources: [src]}\n"
        "  - convert: {sample-rate: 16000, channels: 1}\n"
        f"  - trim: {{head: {head}}}\n"
        f"  - slice: {{chunk: {chunk}, keep-last: true}}\n",
        encoding="utf-8",
    )
    return config


def _finished(workdir: Path) -> dict[str, str]:
    return {
        p.name: json.loads((p / "stage.json").read_text())["finished_at"]
        + str((p / "stage.json").stat().st_mtime_ns)
        for p in sorted(workdir.iterdir())
        if (p / "stage.json").exists()
    }


@pytest.mark.slow
def test_changing_one_parameter_reruns_that_stage_and_those_after_only(tmp_path: Path) -> None:
    require_shared()
    work = tmp_path / "work"
    config = _small_config(tmp_path)
    proc = cli("run", config, "--workdir", work, "-q")
    first = _finished(work)
    assert list(first) == ["01-ingest", "02-convert", "03-trim", "04-slice"]
    assert proc.stderr.count("run: not run yet") == 4

    proc = cli("run", config, "--workdir", work, "-q")
    assert _finished(work) == first
    assert proc.stderr.count("skip: finished with the same settings and input") == 4

    _small_config(tmp_path, head=0.5)
    dry = cli("run", config, "--workdir", work, "--dry-run")
    assert "[03-trim] rerun: settings changed (head: 0.2 -> 0.5)" in dry.stderr
    assert _finished(work) == first  # a dry run touches nothing
    proc = cli("run", config, "--workdir", work, "-q")
    second = _finished(work)
    assert [k for k in first if first[k] == second[k]] == ["01-ingest", "02-convert"]
    assert "[04-slice] rerun: an earlier stage ran again" in proc.stderr
    trimmed = read_jsonl(work / "03-trim" / "manifest.jsonl")
    assert all(r["offset"] == pytest.approx(0.5) for r in trimmed)
    # the last stage alone
    _small_config(tmp_path, head=0.5, chunk=3.0)
    cli("run", config, "--workdir", work, "-q")
    third = _finished(work)
    assert [k for k in second if second[k] != third[k]] == ["04-slice"]


@pytest.mark.slow
def test_a_chain_killed_midway_resumes(tmp_path: Path) -> None:
    require_shared()
    work = tmp_path / "work"
    config = _small_config(tmp_path)
    cli("run", config, "--workdir", work, "-q")
    (work / "03-trim" / "stage.json").unlink()  # as if killed before trim finished
    (work / "03-trim" / "manifest.jsonl").unlink()
    proc = cli("run", config, "--workdir", work, "-q")
    assert "[03-trim] resume: an earlier run of it did not finish" in proc.stderr
    assert "[04-slice] rerun: an earlier stage ran again" in proc.stderr


@pytest.mark.slow
def test_config_mistakes_are_named(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    cases = {
        "stages:\n  - ingest: {sources: [x]}\n  - convrt: {}\n": "unknown stage 'convrt'",
        "stages:\n  - ingest: {sources: [x]}\n  - convert: {rate: 1}\n": "no option 'rate'",
        "stages:\n  - convert: {}\n": "needs an input",
        "stages: [\n": "not valid YAML",
        "stage:\n  - ingest: {}\n": "needs a `stages:` list",
        "stages:\n  - ingest: {sources: [x], overwrite: true}\n": "set by `audioprep run`",
        "stages:\n  - ingest: {sources: [x]}\n  - trim: {head: abc}\n": "audioprep trim",
    }
    for text, message in cases.items():
        bad.write_text(text, encoding="utf-8")
        proc = cli("run", bad, "--workdir", tmp_path / "w", check=False)
        assert proc.returncode == 2, (text, proc.stderr)
        assert message in proc.stderr, (text, proc.stderr)


def test_presets_parse_with_the_command_lines_options(tmp_path: Path) -> None:
    os.environ.setdefault("AUDIOPREP_SHARED", str(SHARED))
    for name in ("speech-tts", "asmr", "podcast-voice", "demo"):
        chain = load_chain(REPO / "configs" / f"{name}.yaml")
        steps = plan(chain, tmp_path / name)
        assert all(p.action == "run" for p in steps)
        assert kind_of(steps[0].call.stage) == "source"
    tts = {
        p.step.command: p.call.stage.params
        for p in plan(load_chain(REPO / "configs" / "speech-tts.yaml"), tmp_path / "t")
    }
    assert list(tts) == [
        "crawl",
        "convert",
        "dedupe",
        "trim",
        "separate",
        "segment",
        "slice",
        "quality",
        "denoise",
        "speaker-filter",
        "transcribe",
        "loudness",
    ]
    assert (tts["convert"].sample_rate, tts["convert"].channels) == (22050, 1)
    assert (tts["slice"].min_duration, tts["slice"].max_duration) == (1.5, 15.0)
    asmr = {
        p.step.command: p.call.stage.params
        for p in plan(load_chain(REPO / "configs" / "asmr.yaml"), tmp_path / "a")
    }
    assert "separate" not in asmr and asmr["convert"].channels == 2 and asmr["slice"].chunk == 30
    with pytest.raises(UsageError):
        load_chain(tmp_path / "missing.yaml")


@pytest.mark.slow
def test_the_makefile_runs_the_same_chain_and_reruns_what_changed(tmp_path: Path) -> None:
    require_shared()
    if not shutil.which("make"):
        pytest.skip("make is not installed")
    config = _small_config(tmp_path)
    mk = tmp_path / "Makefile"
    mk.write_text(cli("makefile", config, "--workdir", "w").stdout)
    ap = str(REPO / ".venv" / "bin" / "audioprep")
    make = ["make", "-C", str(tmp_path), f"AP={ap}"]
    subprocess.run([*make, "-j2"], check=True, capture_output=True)
    work = tmp_path / "w"
    first = _finished(work)
    assert list(first) == ["01-ingest", "02-convert", "03-trim", "04-slice"]
    again = subprocess.run([*make, "-j2"], check=True, capture_output=True, text=True)
    assert "audioprep" not in again.stdout.replace(ap, "AP") or "Nothing to be done" in again.stdout
    assert _finished(work) == first
    _small_config(tmp_path, head=0.5)
    mk.write_text(cli("makefile", config, "--workdir", "w").stdout)
    out = subprocess.run([*make, "-j2"], check=True, capture_output=True, text=True).stdout
    assert re.search(r"trim .* --overwrite", out) and "convert" not in out.split("trim")[0]
    second = _finished(work)
    assert [k for k in first if first[k] == second[k]] == ["01-ingest", "02-convert"]
