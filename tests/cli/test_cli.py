"""The command line: help, exit statuses, clear errors, and a whole chain end to end."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
import soundfile as sf

from audioprep.testing import cli, read_jsonl

STAGES = ("ingest", "convert", "trim")


def test_help_lists_every_stage_without_heavy_imports() -> None:
    proc = cli("--help")
    for name in STAGES:
        assert name in proc.stdout
    probe = subprocess.run(
        [
            sys.executable,
            "-c",
            "import sys; from audioprep.cli.app import app\n"
            "try: app(['--help'])\nexcept SystemExit: pass\n"
            "heavy = [m for m in ('numpy', 'soundfile', 'ffmpeg', 'scipy') if m in sys.modules]\n"
            "print('HEAVY=' + ','.join(heavy))",
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    assert probe.stdout.strip().splitlines()[-1] == "HEAVY="


def test_every_command_help_has_an_example() -> None:
    for name in STAGES:
        out = cli(name, "--help").stdout
        assert "Example:" in out and f"audioprep {name}" in out


def test_bad_options_exit_2_and_missing_input_exits_3(tmp_path) -> None:
    proc = cli("trim", tmp_path, tmp_path / "o", "--head", "-1", check=False)
    assert proc.returncode == 2 and "Invalid value for '--head'" in proc.stderr
    proc = cli("convert", tmp_path, tmp_path / "o", check=False)
    assert proc.returncode == 3
    assert "has no manifest.jsonl" in proc.stderr and "Traceback" not in proc.stderr


def test_missing_ffmpeg_is_one_sentence_with_the_fix(tmp_path, media_dir) -> None:
    env = {**os.environ, "PATH": os.path.dirname(sys.executable)}
    proc = cli("ingest", media_dir, tmp_path / "raw", check=False, env=env)
    assert proc.returncode == 3
    assert (
        proc.stderr.strip().splitlines() == [proc.stderr.strip().splitlines()[0]]
        and "ffmpeg and ffprobe not found on PATH" in proc.stderr
        and "make ffmpeg" in proc.stderr
    )


@pytest.mark.slow
def test_chain_ingest_convert_trim(media_dir, tmp_path) -> None:
    raw, wav, trimmed = tmp_path / "01-raw", tmp_path / "02-wav", tmp_path / "03-trim"
    cli("ingest", media_dir, raw)
    proc = cli("convert", raw, wav, "--sample-rate", "16000", "--channels", "1", "-j", "2")
    assert "convert: 7 ok of 7 items" in proc.stderr
    cli("trim", wav, trimmed, "--head", "0.5", "--tail", "0.25")
    records = read_jsonl(trimmed / "manifest.jsonl")
    converted = {r["id"]: r for r in read_jsonl(wav / "manifest.jsonl")}
    assert len(records) == 7
    for rec in records:
        info = sf.info(str(trimmed / rec["audio"]))  # checked from the audio itself
        assert (info.samplerate, info.channels) == (16000, 1)
        assert info.frames == round(converted[rec["id"]]["duration"] * 16000) - 8000 - 4000
        assert rec["offset"] == 0.5 and rec["source"]["path"].startswith(str(media_dir))
    stage = json.loads((trimmed / "stage.json").read_text())
    assert stage["stage"] == "trim" and stage["params"] == {"head": 0.5, "tail": 0.25}
    # every directory is self-contained: delete the upstream ones, the result still reads
    import shutil

    shutil.rmtree(raw)
    shutil.rmtree(wav)
    for rec in records:
        assert sf.info(str(trimmed / rec["audio"])).frames > 0
    # re-running a finished stage does nothing and says so
    again = cli("ingest", media_dir, raw)
    assert "7 ok of 7 items" in again.stderr
