"""select: keep the records an expression holds for; refusals before anything is written."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from audioprep.cli.app import app
from audioprep.run.runner import run_stage
from audioprep.stages.quality import QualityStage
from audioprep.stages.select import SelectStage
from audioprep.testing import arrays_manifest_dir, read_jsonl

SR = 16000


def _corpus(root: Path) -> Path:
    """Tones of 2-14 s with noise from none to loud: SNRs and durations on both sides."""
    rng = np.random.default_rng(0)
    files = {}
    for i, (seconds, noise) in enumerate(
        [(2, 0.0), (5, 0.3), (8, 0.01), (11, 0.1), (13, 0.0), (3, 1.0), (6, 0.03)]
    ):
        t = np.arange(int(seconds * SR)) / SR
        speechy = 0.3 * np.sin(2 * np.pi * 220 * t) * (0.5 + 0.5 * np.sin(2 * np.pi * 3 * t))
        x = speechy + noise * 0.3 * rng.standard_normal(t.size)
        files[f"c{i}"] = ((x / max(1.0, np.abs(x).max())).astype(np.float32), SR)
    return arrays_manifest_dir(root, files)


def test_select_after_quality_keeps_exactly_what_the_expression_holds_for(tmp_path: Path) -> None:
    src = _corpus(tmp_path / "in")
    scored = tmp_path / "scored"
    q = QualityStage(QualityStage.Params(dnsmos=False, min_snr=100.0, annotate_only=True))
    assert run_stage(q, scored, in_dir=src, jobs=1, progress=False).exit_code == 0
    records = read_jsonl(scored / "manifest.jsonl")
    assert len(records) == 7  # annotate-only drops nothing ...
    assert all(r["quality_pass"] is False for r in records)  # ... and says what it would have
    assert all("below --min-snr 100" in r["quality_reason"] for r in records)
    snrs = sorted(r["quality"]["snr_db"] for r in records if r["quality"]["snr_db"] is not None)
    x = snrs[len(snrs) // 2]  # a threshold in the middle of the measured SNRs
    where = f"quality.snr_db >= {x!r} and duration < 12"
    result = CliRunner().invoke(
        app, ["select", str(scored), str(tmp_path / "out"), "--where", where, "--quiet"]
    )
    assert result.exit_code == 0, result.output
    want = {
        r["id"]
        for r in records
        if r["quality"]["snr_db"] is not None and r["quality"]["snr_db"] >= x and r["duration"] < 12
    }
    kept = read_jsonl(tmp_path / "out" / "manifest.jsonl")
    rejected = read_jsonl(tmp_path / "out" / "rejected.jsonl")
    assert {r["id"] for r in kept} == want
    assert 0 < len(want) < 7
    assert {r["id"] for r in rejected} == {r["id"] for r in records} - want
    for r in rejected:
        assert r["expression"] == where
        assert r["values"]["quality.snr_db"] == r["record"]["quality"]["snr_db"]
        assert r["values"]["duration"] == r["record"]["duration"]  # every field it names
        assert r["stage"] == "select"
    for r in kept:  # every field passes through, the audio is there
        assert (tmp_path / "out" / r["audio"]).is_file()
        assert r["quality"] == next(s["quality"] for s in records if s["id"] == r["id"])


def test_select_on_the_pass_field_and_per_record_type_errors(tmp_path: Path) -> None:
    src = _corpus(tmp_path / "in")
    out = tmp_path / "out"
    stage = SelectStage(SelectStage.Params(where="duration > 4 and source.path != 'x'"))
    stage.check()
    assert run_stage(stage, out, in_dir=src, jobs=1, progress=False).items_ok == 5
    bad = SelectStage(SelectStage.Params(where="source.path > 3"))
    bad.check()
    res = run_stage(bad, tmp_path / "out2", in_dir=src, jobs=1, progress=False)
    errors = read_jsonl(tmp_path / "out2" / "errors.jsonl")
    assert len(errors) == 7 and res.items_ok == 0
    assert "source.path = '/data/test/c0.wav' is a string" in errors[0]["reason"]
    assert "Traceback" not in errors[0]["reason"]


@pytest.mark.parametrize(
    ("where", "words"),
    [
        ("__import__('os').system('touch PWNED') == 0", "'__'"),
        ("open('PWNED') == 1", "calls are not allowed"),
        ("duration.__class__ == 1", "'__'"),
        ("duration > 1 +", "unknown operator"),
        ("(duration > 1", "close the '('"),
        ("'a' < 3", "compares numbers"),
        ("(" * 10_000 + "a > 1" + ")" * 10_000, "nests deeper"),
        ("a > 1 or " * 120_000 + "a > 1", "the limit is"),
        ("", "--where is required"),
    ],
)
def test_bad_expressions_are_refused_before_anything_is_written(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, where: str, words: str
) -> None:
    src = _corpus(tmp_path / "in")
    monkeypatch.chdir(tmp_path)
    out = tmp_path / "out"
    result = CliRunner().invoke(app, ["select", str(src), str(out), "--where", where])
    assert result.exit_code == 2, result.output
    assert words in result.output
    assert "Traceback" not in result.output
    assert not out.exists()
    assert not (tmp_path / "PWNED").exists()


def test_select_is_a_chain_step(tmp_path: Path) -> None:
    src = _corpus(tmp_path / "in")
    config = tmp_path / "chain.yaml"
    config.write_text(
        f"input: {src}\nstages:\n"
        "  - select:\n      where: duration < 7\n"
        "  - select:\n      where: \"source.path in ['/data/test/c0.wav', '/data/test/c1.wav']\"\n"
    )
    result = CliRunner().invoke(
        app, ["run", str(config), "--workdir", str(tmp_path / "chain"), "--quiet"]
    )
    assert result.exit_code == 0, result.output
    finals = sorted((tmp_path / "chain").glob("*select*/manifest.jsonl"))
    assert finals, list((tmp_path / "chain").iterdir())
    kept = {r["id"] for r in read_jsonl(finals[-1])}
    assert kept == {"c0", "c1"}


def test_dedupe_annotate_only_then_select(tmp_path: Path) -> None:
    """dedupe --annotate-only keeps both copies, marks one dedupe_pass false; select drops it."""
    import shutil

    from audioprep.testing import LIBRI, make_manifest_dir, require_shared

    require_shared()
    flac = sorted((LIBRI / "1688").glob("*.flac"))[3]
    files = tmp_path / "files"
    files.mkdir()
    shutil.copy(flac, files / "a.flac")
    shutil.copy(flac, files / "b.flac")  # the same audio twice
    shutil.copy(sorted((LIBRI / "1998").glob("*.flac"))[0], files / "c.flac")
    src = make_manifest_dir(tmp_path / "in", sorted(files.iterdir()))
    run = CliRunner().invoke(
        app, ["dedupe", str(src), str(tmp_path / "d"), "--annotate-only", "--quiet", "-j", "1"]
    )
    assert run.exit_code == 0, run.output
    records = read_jsonl(tmp_path / "d" / "manifest.jsonl")
    assert len(records) == 3  # nothing dropped
    passes = {r["id"]: r["dedupe_pass"] for r in records}
    assert sorted(passes.values()) == [False, True, True] and passes["c"] is True
    run = CliRunner().invoke(
        app, ["select", str(tmp_path / "d"), str(tmp_path / "s"), "--where", "dedupe_pass", "-q"]
    )
    assert run.exit_code == 0, run.output
    kept = {r["id"] for r in read_jsonl(tmp_path / "s" / "manifest.jsonl")}
    assert kept == {i for i, ok in passes.items() if ok}


@pytest.mark.slow
def test_speaker_filter_annotate_only_then_select(tmp_path: Path) -> None:
    """The target's clips and another speaker's: all kept with speaker_pass; select applies it
    and equals what speaker-filter itself keeps."""
    from audioprep.testing import LIBRI, make_manifest_dir, require_shared

    require_shared()
    target = sorted((LIBRI / "1688").glob("*.flac"))
    other = sorted((LIBRI / "2414").glob("*.flac"))
    src = make_manifest_dir(tmp_path / "in", target[3:6] + other[:3])
    refs = [str(f) for f in target[:3]]
    common = [
        *(x for r in refs for x in ("--reference", r)),
        "--threshold",
        "0.75",
        "-q",
        "-j",
        "1",
    ]
    run = CliRunner().invoke(
        app, ["speaker-filter", str(src), str(tmp_path / "a"), *common, "--annotate-only"]
    )
    assert run.exit_code == 0, run.output
    records = read_jsonl(tmp_path / "a" / "manifest.jsonl")
    assert len(records) == 6 and all("speaker_pass" in r for r in records)
    run = CliRunner().invoke(app, ["speaker-filter", str(src), str(tmp_path / "f"), *common])
    assert run.exit_code == 0, run.output
    filtered = {r["id"] for r in read_jsonl(tmp_path / "f" / "manifest.jsonl")}
    run = CliRunner().invoke(
        app, ["select", str(tmp_path / "a"), str(tmp_path / "s"), "--where", "speaker_pass", "-q"]
    )
    assert run.exit_code == 0, run.output
    selected = {r["id"] for r in read_jsonl(tmp_path / "s" / "manifest.jsonl")}
    assert selected == filtered and 0 < len(selected) < 6
