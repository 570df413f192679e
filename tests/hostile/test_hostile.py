"""Hostile input and faults (issue 17): each case grouped by its cause and parametrised.

Every case checks what the issue asks: the exit status, one clear line, the good items of the
same batch finished, nothing written outside OUT, and the input untouched.
"""

from __future__ import annotations

import contextlib
import csv
import fcntl
import hashlib
import http.server
import json
import os
import random
import resource
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from audioprep.errors import ItemError, UsageError
from audioprep.testing import cli, read_jsonl

GOOD = 3  # good items in every batch


# -- helpers ---------------------------------------------------------------------------------------
def corpus(root: Path, *, extra: list[bytes] = (), name: str = "in", bom: bool = False) -> Path:
    """A manifest directory of GOOD tiny wav files plus raw ``extra`` manifest lines."""
    d = root / name
    (d / "audio").mkdir(parents=True)
    lines = []
    for i in range(GOOD):
        sf.write(d / f"audio/a{i}.wav", np.full(800, 100 * (i + 1), dtype=np.int16), 16000)
        rec = {
            "id": f"a{i}",
            "audio": f"audio/a{i}.wav",
            "duration": 0.05,
            "sample_rate": 16000,
            "channels": 1,
            "text": f"text {i}",
        }
        lines.append(json.dumps(rec).encode())
    data = b"".join(line + b"\n" for line in [*lines[:1], *extra, *lines[1:]])
    (d / "manifest.jsonl").write_bytes((b"\xef\xbb\xbf" if bom else b"") + data)
    return d


def bad(**fields: object) -> dict:
    return {
        "id": "bad",
        "audio": "audio/a0.wav",
        "duration": 0.05,
        "sample_rate": 16000,
        "channels": 1,
        **fields,
    }


def snapshot(root: Path, *, skip: tuple[Path, ...] = ()) -> dict[str, tuple[int, str]]:
    """Every file under ``root`` (but ``skip``) with its size and hash: to prove nothing changed."""
    out = {}
    for dirpath, dirs, files in os.walk(root, followlinks=False):
        base = Path(dirpath)
        dirs[:] = [d for d in dirs if base / d not in skip]
        for f in files:
            p = base / f
            if p.is_symlink():
                out[str(p)] = (0, os.readlink(p))
                continue
            out[str(p)] = (p.stat().st_size, hashlib.md5(p.read_bytes()).hexdigest())
        for d in dirs:
            out[str(base / d) + "/"] = (0, "")
    return out


def strict_json(text: str) -> object:
    def refuse(name: str) -> None:
        raise ValueError(f"{name} in JSON")

    return json.loads(text, parse_constant=refuse)


def one_line(stderr: str) -> str:
    lines = [ln for ln in stderr.splitlines() if ln.strip()]
    assert len(lines) == 1, stderr
    assert "Traceback" not in stderr
    return lines[0]


# -- 7, 8 and the BOM: one bad manifest line is one errors.jsonl line ------------------------------
NEST = 100_000
BAD_LINES = {
    "nan-field": json.dumps(bad(score=float("nan"))).encode(),
    "infinity-field": json.dumps(bad(score=float("inf"))).encode(),
    "nan-duration": json.dumps(bad(duration=float("nan"))).encode(),
    "infinity-duration": json.dumps(bad(duration=float("inf"))).encode(),
    "invalid-utf8": json.dumps(bad(title="x")).encode().replace(b'"x"', b'"\xff\xfe"'),
    "lone-surrogate": json.dumps(bad(title="x")).encode().replace(b'"x"', b'"\\ud800"'),
    "huge-int": json.dumps(bad(n=0)).encode().replace(b'"n": 0', b'"n": ' + b"9" * 5000),
    "deep-nesting": json.dumps(bad(n=0)).encode().replace(b"0}", b"[" * NEST + b"]" * NEST + b"}"),
    "nul-in-audio": json.dumps(bad(audio="audio/a0.wav\0x")).encode(),
    "sample-rate-0": json.dumps(bad(sample_rate=0)).encode(),
    "channels-1.5": json.dumps(bad(channels=1.5)).encode(),
    "sample-rate-text": json.dumps(bad(sample_rate="abc")).encode(),
    "no-id": json.dumps({k: v for k, v in bad().items() if k != "id"}).encode(),
    "absolute-audio": json.dumps(bad(audio="/etc/passwd")).encode(),
    "symlink-loop": json.dumps(bad(audio="audio/loop/x.wav")).encode(),
    "not-an-object": b"[1, 2, 3]",
    "truncated": b'{"id": "bad", "audio"',
}


@pytest.mark.parametrize("case", sorted(BAD_LINES))
def test_a_bad_manifest_line_is_one_error_and_the_batch_completes(tmp_path: Path, case) -> None:
    src = corpus(tmp_path, extra=[BAD_LINES[case]])
    (src / "audio" / "loop").symlink_to("loop")  # a symlink loop in audio/
    before = snapshot(tmp_path)
    out = tmp_path / "out"
    proc = cli("trim", src, out, "--head", "0.01", "-q", check=False)
    assert proc.returncode == 1, proc.stderr
    assert one_line(proc.stderr).startswith(f"trim: {GOOD} ok, 1 failed")
    errors = read_jsonl(out / "errors.jsonl")
    assert len(errors) == 1 and errors[0]["reason"], errors
    assert [r["id"] for r in read_jsonl(out / "manifest.jsonl")] == ["a0", "a1", "a2"]
    stage = strict_json((out / "stage.json").read_text())  # no NaN in stage.json
    assert stage["items_failed"] == 1 and stage["items_ok"] == GOOD
    assert snapshot(tmp_path, skip=(out,)) == before  # input untouched, nothing else written
    # info and report read the same input: the bad record is counted, not a crash
    from audioprep.reports.html import info_table, summarize

    summary = strict_json(json.dumps(summarize(src), allow_nan=False))
    assert summary["items"] == GOOD and summary["invalid_records"]["count"] == 1
    assert "1 records left out" in info_table(summary)


def test_report_on_wrong_field_types_does_not_crash(tmp_path: Path) -> None:
    extra = [
        json.dumps(bad(source="a string")).encode(),
        json.dumps(bad(id="x2", sample_rate="abc")).encode(),
    ]
    src = corpus(tmp_path, extra=extra)
    (tmp_path / "rep").mkdir()
    proc = cli("report", src, "--out", tmp_path / "rep" / "r.html", "--samples", "2")
    assert "report: 4 items" in one_line(proc.stderr)  # "bad" with a string source is valid
    assert strict_json((tmp_path / "rep" / "r.json").read_text())["invalid_records"]["count"] == 1
    proc = cli("info", src)
    assert "1 records left out" in proc.stdout


def test_a_bom_does_not_cost_the_first_record(tmp_path: Path) -> None:
    src = corpus(tmp_path, bom=True)
    out = tmp_path / "out"
    proc = cli("trim", src, out, "-q")
    assert one_line(proc.stderr).startswith(f"trim: {GOOD} ok of {GOOD} items")


def test_a_stage_output_with_nan_is_that_items_error(tmp_path: Path) -> None:
    """Denoise of a float wav holding NaN samples: one error line, the others finish."""
    src = corpus(tmp_path)
    y = np.zeros(1600, dtype=np.float32)
    y[100] = np.nan
    sf.write(src / "audio" / "nan.wav", y, 16000, subtype="FLOAT")
    rec = bad(id="nan", audio="audio/nan.wav", duration=0.1)
    with open(src / "manifest.jsonl", "a") as fh:
        fh.write(json.dumps(rec) + "\n")
    out = tmp_path / "out"
    proc = cli("denoise", src, out, "--highpass", "80", "-q", check=False)
    assert proc.returncode == 1, proc.stderr
    assert one_line(proc.stderr).startswith(f"denoise: {GOOD} ok, 1 failed")
    (error,) = read_jsonl(out / "errors.jsonl")
    assert error["id"] == "nan" and "NaN" in error["reason"]


def test_a_journaled_result_with_nan_becomes_an_error(tmp_path: Path) -> None:
    from audioprep.core.stage import ItemResult
    from audioprep.run.journal import Journal

    j = Journal(tmp_path / "j.jsonl")
    j.open({"input": None})
    got = j.append(ItemResult(id="x", status="ok", records=[{"id": "x", "v": float("nan")}]))
    assert got.status == "error" and "NaN" in got.error["reason"]
    j.close()
    j2 = Journal(tmp_path / "j.jsonl")
    j2.open({"input": None})
    assert j2.status("x") == "error"


# -- the property test: any line becomes a record or an errors.jsonl line --------------------------
def _hostile_lines():
    from hypothesis import strategies as st

    scalars = st.one_of(
        st.none(),
        st.booleans(),
        st.integers(),
        st.floats(allow_nan=True, allow_infinity=True),
        st.text(),
    )
    values = st.recursive(
        scalars,
        lambda inner: (
            st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=5), inner, max_size=4)
        ),
        max_leaves=12,
    )
    records = st.fixed_dictionaries(
        {},
        optional={
            "id": st.one_of(st.sampled_from(["a", "b", "../x", "", "a b"]), values),
            "audio": st.one_of(
                st.sampled_from(["audio/a0.wav", "/etc/passwd", "audio/\0", "../a"]), values
            ),
            "duration": st.one_of(st.floats(), values),
            "sample_rate": st.one_of(st.integers(), values),
            "channels": st.one_of(st.integers(-2, 3), values),
            "x": values,
        },
    )
    as_json = records.map(lambda r: json.dumps(r).encode("utf-8", "surrogatepass"))
    tokens = st.sampled_from(
        [
            b"NaN",
            b"-Infinity",
            b'"\\ud800"',
            b"9" * 5000,
            b"[" * 5000,
            b"\xff",
            b"\x00",
            b"\xef\xbb\xbf",
            b"}",
            b"{",
        ]
    )

    def splice(line: bytes, token: bytes, at: float) -> bytes:
        i = int(at * len(line))
        return line[:i] + token + line[i:]

    spliced = st.builds(splice, as_json, tokens, st.floats(0, 1))
    raw = st.binary(max_size=200).filter(lambda b: b"\n" not in b and b"\r" not in b)
    return st.one_of(as_json, spliced, raw).map(
        lambda b: b.replace(b"\n", b" ").replace(b"\r", b" ")
    )


def test_property_the_manifest_reader_never_raises() -> None:
    from hypothesis import given, settings
    from hypothesis import strategies as st

    from audioprep.manifests.records import parse_line, validate_record

    @settings(max_examples=400, deadline=None)
    @given(st.lists(_hostile_lines(), min_size=1, max_size=5))
    def check(lines: list[bytes]) -> None:
        for line in lines:
            record, problem = parse_line(line)
            assert (record is None) == bool(problem)
            if record is not None:
                from audioprep.manifests.records import dumps

                dumps(record).encode("utf-8")  # anything parsed can be written back
                with contextlib.suppress(ItemError):
                    validate_record(record)

    check()


def test_property_every_line_becomes_a_record_or_an_error_line(tmp_path_factory) -> None:
    from hypothesis import HealthCheck, given, settings
    from hypothesis import strategies as st

    from audioprep.run.runner import run_stage
    from audioprep.testing import ToyStage

    @settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck))
    @given(st.lists(_hostile_lines(), min_size=1, max_size=6))
    def check(lines: list[bytes]) -> None:
        root = tmp_path_factory.mktemp("prop")
        src = corpus(root, extra=[ln for ln in lines if ln.strip()])
        out = root / "out"
        summary = run_stage(ToyStage(), out, in_dir=src, jobs=1, progress=False)
        n_lines = GOOD + sum(1 for ln in lines if ln.strip())
        ok = read_jsonl(out / "manifest.jsonl")
        errors = read_jsonl(out / "errors.jsonl")
        assert summary.items_in == n_lines
        # each line is a record or an error (a good record's id may be duplicated by a line)
        assert len(ok) + len(errors) + summary.items_rejected == n_lines
        assert {"a0", "a1", "a2"} <= {r["id"] for r in ok} | {e["id"] for e in errors}
        strict_json((out / "stage.json").read_text())

    check()


# -- 2, 4, 6: a command never writes into, clears or reads back its own input ----------------------
def _chain_into_own_input(tmp: Path) -> tuple[list[object], Path]:
    work = tmp / "work"
    src = corpus(work, name="02-trim")  # the user's data, named like a stage directory
    config = tmp / "chain.yaml"
    config.write_text(
        "input: work/02-trim\nstages:\n  - trim: {head: 0.01}\n  - trim: {head: 0.01}\n"
    )
    return ["run", config, "--workdir", work, "-q"], src


def _clear_outer(tmp: Path) -> tuple[list[object], Path]:
    d = tmp / "d"
    src = corpus(d)
    return ["export", src, d, "--format", "hf", "--overwrite"], src


def _overwrite_holding_input(tmp: Path) -> tuple[list[object], Path]:
    first = corpus(tmp, name="first")
    out = tmp / "out"
    cli("trim", first, out, "-q")
    src = corpus(out, name="sub")
    return ["trim", src, out, "--overwrite", "-q"], src


def _ingest_own_output(tmp: Path) -> tuple[list[object], Path]:
    src = tmp / "src"
    src.mkdir()
    for i in range(3):
        sf.write(src / f"f{i}.wav", np.zeros(800, dtype=np.int16), 16000)
    return ["ingest", src, src / "out", "-q"], src


DIR_CASES = {
    "export-out-is-in": lambda t: (
        ["export", corpus(t), t / "in", "--format", "hf", "--overwrite"],
        t / "in",
    ),
    "export-out-holds-in": _clear_outer,
    "stage-out-is-in": lambda t: (["trim", corpus(t), t / "in", "-q"], t / "in"),
    "stage-out-in-ins-audio": lambda t: (
        ["trim", corpus(t), t / "in" / "audio" / "x", "-q"],
        t / "in",
    ),
    "export-out-in-ins-audio": lambda t: (
        ["export", corpus(t), t / "in" / "audio" / "x"],
        t / "in",
    ),
    "overwrite-out-holding-in": _overwrite_holding_input,
    "ingest-out-inside-src": _ingest_own_output,
    "chain-input-is-a-stage-dir": _chain_into_own_input,
}


@pytest.mark.parametrize("case", sorted(DIR_CASES))
def test_no_command_writes_over_its_input(tmp_path: Path, case) -> None:
    args, src = DIR_CASES[case](tmp_path)
    before = snapshot(tmp_path)
    proc = cli(*args, check=False)
    assert proc.returncode == 2, proc.stderr
    line = one_line(proc.stderr)
    assert "input" in line or "source" in line, line
    assert snapshot(tmp_path) == before  # nothing written anywhere, the input untouched
    assert src.exists()


# -- 1, 9, 10, 11: exports -------------------------------------------------------------------------
FORMATS = ("hf", "nemo", "ljspeech", "csv")


@pytest.mark.parametrize("fmt", FORMATS)
def test_export_never_writes_outside_out_for_a_hostile_id(tmp_path: Path, fmt) -> None:
    victim = tmp_path / "victim" / "keep.wav"
    victim.parent.mkdir()
    victim.write_bytes(b"precious")
    extra = [
        json.dumps(bad(id="../../victim/keep")).encode(),
        json.dumps(bad(id="abs", audio=str(victim))).encode(),
    ]
    src = corpus(tmp_path, extra=extra)
    out = tmp_path / "export"
    before = snapshot(tmp_path)
    proc = cli("export", src, out, "--format", fmt, check=False)
    assert proc.returncode == 1, proc.stderr
    assert "3 items" in one_line(proc.stderr) and "2 skipped" in proc.stderr
    assert victim.read_bytes() == b"precious" and os.stat(victim).st_nlink == 1
    assert snapshot(tmp_path, skip=(out,)) == before
    assert len(read_jsonl(out / "export-errors.jsonl")) == 2
    assert not [p for p in out.rglob("*") if p.name.endswith(".tmp")]
    for p in out.rglob("*"):
        assert p.resolve().is_relative_to(out.resolve())


@pytest.mark.parametrize("fmt", ("hf", "nemo", "csv", "ljspeech"))
def test_export_names_never_collide(tmp_path: Path, fmt) -> None:
    src = tmp_path / "in"
    for sub, value in (("a", 1000), ("b", 2000)):
        (src / "audio" / sub).mkdir(parents=True)
        sf.write(src / "audio" / sub / "clip.wav", np.full(800, value, dtype=np.int16), 16000)
    recs = [
        {
            "id": sub,
            "audio": f"audio/{sub}/clip.wav",
            "duration": 0.05,
            "sample_rate": 16000,
            "channels": 1,
        }
        for sub in ("a", "b")
    ]
    recs.append({**recs[0]})  # the same id twice (a hand-made manifest)
    (src / "manifest.jsonl").write_text("".join(json.dumps(r) + "\n" for r in recs))
    out = tmp_path / "x"
    cli("export", src, out, "--format", fmt)
    files = sorted(p for p in out.rglob("*.wav"))
    assert len(files) == 3
    assert len({p.name.lower() for p in files}) == 3
    values = sorted(int(sf.read(p, dtype="int16")[0][0]) for p in files)
    assert values == [1000, 1000, 2000]


def test_csv_export_escapes_formulas_and_ljspeech_the_separator(tmp_path: Path) -> None:
    titles = ['=HYPERLINK("http://evil","x")', "+cmd|' /C calc'!A0", "@SUM(1+1)", "-2+3", "plain"]
    extra = [
        json.dumps(bad(id=f"t{i}", source={"title": t}, text=f"a|b {t}")).encode()
        for i, t in enumerate(titles)
    ]
    src = corpus(tmp_path, extra=extra)
    cli("export", src, tmp_path / "csv", "--format", "csv")
    with open(tmp_path / "csv" / "metadata.csv", newline="") as fh:
        rows = {r["item_id"]: r for r in csv.DictReader(fh)}
    for i, t in enumerate(titles):
        expected = t if t == "plain" else "'" + t
        assert rows[f"t{i}"]["title"] == expected
    cli("export", src, tmp_path / "lj", "--format", "ljspeech")
    for line in (tmp_path / "lj" / "metadata.csv").read_text().splitlines():
        assert line.count("|") == 2, line
    cli("export", src, tmp_path / "hf", "--format", "hf")
    for line in (tmp_path / "hf" / "metadata.jsonl").read_text().splitlines():
        strict_json(line)


def test_a_new_export_format_is_one_module() -> None:
    from audioprep import exports

    assert set(FORMATS) <= set(exports.FORMATS)
    for fmt in exports.FORMATS:
        module = exports.format_module(fmt)
        assert fmt == module.NAME and callable(module.write) and module.HELP


# -- 5: a resumed stage whose input was rewritten starts over --------------------------------------
def test_a_resumed_stage_never_mixes_old_and_new_input(tmp_path: Path) -> None:
    from audioprep.run.runner import run_stage
    from audioprep.testing import ToyStage

    src = corpus(tmp_path)
    out = tmp_path / "out"
    run_stage(ToyStage(), out, in_dir=src, jobs=1, progress=False)
    for name in ("manifest.jsonl", "stage.json"):  # as if killed before it finished
        (out / name).unlink()
    lines = (src / "manifest.jsonl").read_text().splitlines()  # the upstream re-ran: new records
    new = [{**json.loads(ln), "text": "fresh"} for ln in lines]
    (src / "manifest.jsonl").write_text("".join(json.dumps(r) + "\n" for r in new))
    summary = run_stage(ToyStage(), out, in_dir=src, jobs=1, progress=False)
    assert summary.items_resumed == 0
    assert [r["text"] for r in read_jsonl(out / "manifest.jsonl")] == ["fresh"] * GOOD
    # and an unchanged input still resumes
    for name in ("manifest.jsonl", "stage.json"):
        (out / name).unlink()
    assert run_stage(ToyStage(), out, in_dir=src, jobs=1, progress=False).items_resumed == GOOD


# -- 12: a full disk or a read-only parent is one sentence, exit 3 ---------------------------------
@contextlib.contextmanager
def _tmpfs(path: Path, options: str):
    path.mkdir()
    proc = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(path)], capture_output=True
    )
    if proc.returncode != 0:
        pytest.skip("cannot mount a tmpfs here (not root)")
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], check=False)


def _fill(path: Path) -> None:
    fd = os.open(path / "filler", os.O_WRONLY | os.O_CREAT)
    try:
        with contextlib.suppress(OSError):
            while True:
                os.write(fd, b"\0" * 4096)
    finally:
        os.close(fd)
    for i in range(100):  # the inodes and the last blocks too
        try:
            (path / f"f{i}").write_bytes(b"\0" * 512)
        except OSError:
            break


@pytest.mark.parametrize("case", ["full", "read-only"])
@pytest.mark.parametrize("command", ["trim", "export", "run", "report"])
def test_a_full_or_read_only_disk_is_one_sentence(tmp_path: Path, case, command) -> None:
    src = corpus(tmp_path)
    config = tmp_path / "c.yaml"
    config.write_text(f"input: {src}\nstages:\n  - trim: {{head: 0.01}}\n")
    before = snapshot(src)
    mnt = tmp_path / "mnt"
    options = "size=256k,nr_inodes=64" if case == "full" else "ro,size=64k"
    with _tmpfs(mnt, options):
        if case == "full":
            (mnt / "corpus").mkdir()
            _fill(mnt)
        parent = mnt / "corpus" if case == "full" else mnt
        args = {
            "trim": ["trim", src, parent / "out", "-q"],
            "export": ["export", src, parent / "out"],
            "run": ["run", config, "--workdir", parent / "work", "-q"],
            "report": ["report", src, "--out", parent / "r.html", "--samples", "0"],
        }[command]
        proc = cli(*args, check=False)
    assert proc.returncode == 3, proc.stderr
    # a chain says which stage it was at first; the reason is then one line
    stderr = "\n".join(ln for ln in proc.stderr.splitlines() if not ln.endswith(": not run yet"))
    line = one_line(stderr)
    assert ("No space left" in line) if case == "full" else ("Read-only" in line), line
    assert snapshot(src) == before


def test_a_file_size_limit_is_one_sentence_too(tmp_path: Path) -> None:
    """Without root: RLIMIT_FSIZE makes every write fail (EFBIG), as a full disk would."""
    src = corpus(tmp_path)

    def limit() -> None:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (0, 0))

    proc = subprocess.run(
        [sys.executable, "-m", "audioprep", "trim", str(src), str(tmp_path / "out"), "-q"],
        capture_output=True,
        text=True,
        preexec_fn=limit,
    )
    assert proc.returncode == 3, proc.stderr
    assert "free some space" in one_line(proc.stderr)


# -- 13: chain configs -----------------------------------------------------------------------------
BOMB = "a: &a [x, x, x, x, x, x, x, x, x]\n" + "".join(
    f"{c}: &{c} [*{p}, *{p}, *{p}, *{p}, *{p}, *{p}, *{p}, *{p}, *{p}]\n"
    for p, c in zip("abcdefgh", "bcdefghi", strict=True)
)
CONFIG_CASES = {
    "alias-bomb": (BOMB.encode() + b"stages:\n  - ingest: {sources: *i}\n", "alias bomb"),
    "recursive-alias": (b"stages: &s\n  - ingest: {sources: [x]}\n  - *s\n", "refers to itself"),
    "stop-on-failure-typo": (
        b"stop_on_failure: maybe\nstages:\n  - ingest: {sources: [x]}\n",
        "true or false",
    ),
    "jobs-text": (b"jobs: two\nstages:\n  - ingest: {sources: [x]}\n", "whole number"),
    "jobs-list": (b"jobs: [1]\nstages:\n  - ingest: {sources: [x]}\n", "whole number"),
    "not-utf8": (b"stages:\n  - ingest: {sources: [caf\xe9]}\n", "not UTF-8"),
    "newline-in-option": (
        b'stages:\n  - ingest: {sources: [x]}\n  - trim: {head: "1\\n\\tall: evil"}\n',
        "newline",
    ),
    "url-looks-like-an-option": (
        b"stages:\n  - crawl: {urls: [--overwrite]}\n",
        "would be read as an option",
    ),
}


@pytest.mark.parametrize("command", ["makefile", "run"])
@pytest.mark.parametrize("case", sorted(CONFIG_CASES))
def test_config_hazards_are_refused_in_one_line(tmp_path: Path, case, command) -> None:
    text, message = CONFIG_CASES[case]
    config = tmp_path / "c.yaml"
    config.write_bytes(text)
    (tmp_path / "x").mkdir()
    before = snapshot(tmp_path)
    extra = ["--workdir", tmp_path / "w"] if command == "run" else []
    proc = cli(command, config, *extra, check=False)
    assert proc.returncode == 2, proc.stderr
    assert message in one_line(proc.stderr)
    assert snapshot(tmp_path) == before


def test_stop_on_failure_reads_its_words(tmp_path: Path) -> None:
    from audioprep.chains.plan import load_chain

    for text, expected in (('"false"', False), ("'no'", False), ("yes", True), ('"true"', True)):
        (tmp_path / "c.yaml").write_text(f"stop_on_failure: {text}\njobs: '2'\nstages: [ingest]\n")
        chain = load_chain(tmp_path / "c.yaml")
        assert chain.stop_on_failure is expected and chain.jobs == 2


def test_the_makefile_quotes_what_it_may_hold(tmp_path: Path) -> None:
    config = tmp_path / "c.yaml"
    config.write_text(
        "stages:\n  - ingest: {sources: ['my $(shell echo x) dir']}\n  - trim: {head: 0.1}\n"
    )
    proc = cli("makefile", config)
    assert "$$(shell" in proc.stdout


# -- 14: crawl caps and schemes --------------------------------------------------------------------
class _Endless(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.0"

    def log_message(self, *args: object) -> None:
        pass

    def do_GET(self) -> None:  # noqa: N802
        if self.path.startswith("/to-ftp"):
            self.send_response(302)
            self.send_header("Location", "ftp://127.0.0.1/x.mp3")
            self.end_headers()
            return
        self.send_response(200)
        self.send_header("Content-Type", "audio/mpeg")  # and no Content-Length: a radio stream
        self.end_headers()
        with contextlib.suppress(OSError):
            while True:
                self.wfile.write(b"\xff\xfb\x90\x00" + b"\0" * 4092)
                time.sleep(0.002)


@pytest.fixture
def endless():
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Endless)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


@pytest.mark.parametrize(
    ("option", "message"),
    [
        ("--max-filesize", "larger than --max-filesize"),
        ("--max-download-time", "longer than --max-download-time"),
    ],
)
def test_crawl_caps_an_endless_stream(tmp_path: Path, endless: str, option, message) -> None:
    value = "200K" if option == "--max-filesize" else "1.5"
    out = tmp_path / "out"
    t0 = time.monotonic()
    proc = cli(
        "crawl",
        f"{endless}/radio.mp3",
        out,
        option,
        value,
        "--retries",
        "0",
        "-q",
        check=False,
        timeout=120,
    )
    assert time.monotonic() - t0 < 60
    assert proc.returncode == 1, proc.stderr
    assert one_line(proc.stderr).startswith("crawl: 0 ok, 1 failed")
    (error,) = read_jsonl(out / "errors.jsonl")
    assert message in error["reason"], error
    assert sum(p.stat().st_size for p in out.rglob("*") if p.is_file()) < 1 << 20


@pytest.mark.parametrize(
    "url", ["file:///etc/passwd", "ftp://127.0.0.1/x.mp3", "data:audio/mp3;base64,AAAA"]
)
def test_the_pytube_download_path_fetches_http_only(tmp_path: Path, url) -> None:
    from audioprep.crawl.http import download

    with pytest.raises(ItemError, match="only http and https"):
        download(url, tmp_path / "x.mp3")
    assert not list(tmp_path.iterdir())


def test_a_redirect_to_another_scheme_is_refused(tmp_path: Path, endless: str) -> None:
    from audioprep.crawl.http import download

    with pytest.raises(ItemError, match="only http and https"):
        download(f"{endless}/to-ftp", tmp_path / "x.mp3")


def test_crawl_caps_have_defaults_and_checks() -> None:
    from audioprep.stages.crawl import CrawlStage

    options = CrawlStage(CrawlStage.Params(urls=("https://a.org/x.mp3",))).options()
    assert options.max_filesize == 4 * 1024**3 and options.max_download_time == 7200
    with pytest.raises(UsageError, match="--max-filesize"):
        CrawlStage(CrawlStage.Params(max_filesize="lots")).options()


# -- minor items -----------------------------------------------------------------------------------
def test_a_run_refused_by_the_lock_does_not_say_done(tmp_path: Path) -> None:
    src = corpus(tmp_path)
    config = tmp_path / "c.yaml"
    config.write_text(f"input: {src}\nstages:\n  - trim: {{head: 0.01}}\n")
    stage_dir = tmp_path / "w" / "01-trim"
    stage_dir.mkdir(parents=True)
    (stage_dir / ".run.json").write_text("{}")  # an earlier run's directory
    fd = os.open(stage_dir / ".lock", os.O_RDWR | os.O_CREAT)
    fcntl.flock(fd, fcntl.LOCK_EX)
    try:
        proc = cli("run", config, "--workdir", tmp_path / "w", "-q", check=False)
    finally:
        os.close(fd)
    assert proc.returncode == 3, proc.stderr
    assert "another audioprep run" in proc.stderr and "run: done" not in proc.stderr


def test_slice_names_a_segment_past_the_end(tmp_path: Path) -> None:
    src = corpus(tmp_path)
    lines = read_jsonl(src / "manifest.jsonl")
    for r in lines:
        r["segments"] = [{"start": 0.0, "end": 0.05, "label": "speech"}]
    lines[1]["segments"] = [{"start": 12.0, "end": 15.0, "label": "speech"}]
    (src / "manifest.jsonl").write_text("".join(json.dumps(r) + "\n" for r in lines))
    out = tmp_path / "out"
    proc = cli("slice", src, out, "--min-duration", "0.01", "--pad", "0", "-q", check=False)
    assert proc.returncode == 1, proc.stderr
    (error,) = read_jsonl(out / "errors.jsonl")
    assert "starts past the end of the audio" in error["reason"]
    assert "psf_fseek" not in error["reason"]


# -- 3: kill -9 while the pool starts leaves no process behind -------------------------------------
def _group_members(pgid: int) -> list[int]:
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2 :].split()
        if fields[0] != "Z" and int(fields[2]) == pgid:  # state, ppid, pgrp
            found.append(int(entry))
    return found


@pytest.mark.slow
def test_kill_9_during_pool_start_leaves_no_process(tmp_path: Path) -> None:
    src = corpus(tmp_path)
    env = dict(os.environ)
    code = (
        "import sys\n"
        "from audioprep.testing import ToyStage\n"
        "from audioprep.run.runner import run_stage\n"
        "run_stage(ToyStage(ToyStage.Params(sleep=0.3)), sys.argv[1], in_dir=sys.argv[2],\n"
        "          jobs=2, progress=False)\n"
    )
    rng = random.Random(17)
    survivors = []
    for attempt in range(20):
        out = tmp_path / f"out{attempt}"
        proc = subprocess.Popen(
            [sys.executable, "-c", code, str(out), str(src)],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            start_new_session=True,
        )
        time.sleep(rng.uniform(0.05, 2.0))
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        deadline = time.monotonic() + 5
        while _group_members(proc.pid) and time.monotonic() < deadline:
            time.sleep(0.1)
        left = _group_members(proc.pid)
        if left:
            survivors.append((attempt, left))
            for pid in left:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
        # the caller's pipes close: a script reading the output does not hang
        proc.stdout.read()
        proc.stderr.read()
        proc.stdout.close()
        proc.stderr.close()
    assert survivors == []


@pytest.mark.slow
def test_segment_writes_nothing_into_the_model_directory(tmp_path: Path) -> None:
    from audioprep.testing import MODELS, require_shared

    require_shared()
    models = tmp_path / "models"
    (models / "inaSpeechSegmenter").mkdir(parents=True)
    for f in (MODELS / "inaSpeechSegmenter").iterdir():
        os.symlink(f, models / "inaSpeechSegmenter" / f.name)
    before = snapshot(models)
    src = corpus(tmp_path)
    env = {k: v for k, v in os.environ.items() if k != "KERAS_HOME"}
    cli("segment", src, tmp_path / "out", "--model-dir", models, "-q", "-j", "1", env=env)
    assert snapshot(models) == before  # no keras.json (the model directory may be shared)
