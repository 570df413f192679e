"""The stage registry and the generated commands: a new stage module is all a stage needs."""

from __future__ import annotations

import dataclasses
import os
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

from audioprep.cli.stage_commands import build_call, stage_command
from audioprep.core import params as schema
from audioprep.core import registry
from audioprep.core.stage import kind_of
from audioprep.errors import UsageError
from audioprep.run.runner import run_stage
from audioprep.testing import cli, make_manifest_dir, read_jsonl, sine_file

NEW_STAGE = '''
"""gain-check: Flag items whose peak is above a limit (a stage written for this test)."""

from __future__ import annotations

import dataclasses

from audioprep.core.params import param
from audioprep.core.stage import ItemContext, MapStage, WorkerContext


@dataclasses.dataclass(frozen=True)
class GainCheckParams:
    limit: float = param(0.9, help="Peak limit (full scale 1).", min=0.0, max=1.0)
    mode: str = param("flag", help="flag or drop.", choices=("flag", "drop"))
    tags: tuple[str, ...] = param((), help="Tags to add.", repeatable=True)


class GainCheckStage(MapStage):
    """Adds `peak_ok` to every record.

    Example: `audioprep gain-check wav/ checked/ --limit 0.5`
    """

    name = "gain-check"
    version = "1"
    Params = GainCheckParams

    def setup(self, ctx: WorkerContext) -> None:
        self.threads_seen = ctx.threads

    def process(self, record, ctx: ItemContext):
        import soundfile as sf

        peak = float(abs(sf.read(str(ctx.input_audio(record)))[0]).max())
        if peak > self.params.limit and self.params.mode == "drop":
            ctx.reject(record, f"peak {peak:.2f} above {self.params.limit}")
            return []
        src = ctx.input_audio(record)
        audio = ctx.link(src, f"{record['id']}{src.suffix}")
        ok = peak <= self.params.limit
        return [{**record, "audio": audio, "peak_ok": ok, "tags": list(self.params.tags)}]
'''


@pytest.fixture
def new_stage(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A stage module outside the package, registered by an installed distribution's
    ``audioprep.stages`` entry point (a dist-info folder on sys.path and PYTHONPATH)."""
    folder = tmp_path / "site"
    folder.mkdir()
    (folder / "gain_check_stage.py").write_text(textwrap.dedent(NEW_STAGE), encoding="utf-8")
    info = folder / "gain_check_stage-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(
        "Metadata-Version: 2.1\nName: gain-check-stage\nVersion: 0.1\n", encoding="utf-8"
    )
    (info / "entry_points.txt").write_text(
        "[audioprep.stages]\ngain-check = gain_check_stage\n", encoding="utf-8"
    )
    monkeypatch.syspath_prepend(str(folder))
    monkeypatch.setenv(
        "PYTHONPATH", os.pathsep.join(p for p in (str(folder), os.environ.get("PYTHONPATH")) if p)
    )
    registry.refresh()
    yield folder
    registry.refresh()


def test_an_outside_stage_registers_through_its_entry_point(
    new_stage: Path, tmp_path: Path
) -> None:
    assert "gain-check" in registry.names()
    info = registry.info("gain-check")
    assert info.module == "gain_check_stage" and info.short_help.startswith("Flag items")
    stage_cls = registry.load("gain-check")
    src = make_manifest_dir(tmp_path / "in", [sine_file(tmp_path / "a.wav")])
    stage = stage_cls(stage_cls.Params(limit=0.5, tags=("x",)))
    assert run_stage(stage, tmp_path / "out", in_dir=src, jobs=1, progress=False).items_ok == 1
    (rec,) = read_jsonl(tmp_path / "out" / "manifest.jsonl")
    assert rec["peak_ok"] is True and rec["tags"] == ["x"]


@pytest.mark.parametrize("name", registry.names())
def test_every_registered_stage_has_a_command_with_help_and_options(name: str) -> None:
    info = registry.info(name)
    assert info.short_help and not info.short_help.lower().startswith(f"{name}:")
    stage_cls = registry.load(name)
    assert stage_cls.name == name and kind_of(stage_cls) in ("map", "source", "corpus")
    cmd = stage_command(name)
    flags = {opt for p in cmd.params for opt in p.opts if opt.startswith("--")}
    for f in schema.fields(stage_cls.Params):
        assert f.help, f"{name}: {f.name} has no help"
        if not f.positional:
            assert f.flag in flags, (name, f.flag)
    assert {"--jobs", "--fail-fast", "--overwrite", "--quiet"} <= flags
    assert "Example:" in (cmd.help or "") and f"audioprep {name}" in cmd.help
    # Params -> argv -> Params is the identity (what chains and Makefiles rely on)
    params = stage_cls.Params()
    argv = [name, *(["in"] if kind_of(stage_cls) != "source" else []), "out"]
    ctx = cmd.make_context(name, argv[1:] + schema.to_argv(params, only_changed=False))
    call = build_call(stage_cls, dict(ctx.params))
    assert dataclasses.asdict(call.stage.params) == dataclasses.asdict(params)


def test_yaml_mistakes_name_the_stage_the_option_and_the_valid_ones() -> None:
    trim = registry.load("trim")
    with pytest.raises(UsageError, match=r"no option 'haed' \(options: head, tail\)"):
        schema.from_mapping(trim.Params, {"haed": 1}, stage="trim")
    convert = registry.load("convert")
    with pytest.raises(UsageError, match=r"audioprep convert: --format 'mp3' is not one of: wav"):
        schema.from_mapping(convert.Params, {"format": "mp3"}, stage="convert")
    assert schema.from_mapping(convert.Params, {"sample-rate": "8000"}).sample_rate == 8000


@pytest.mark.slow
def test_a_new_stage_module_is_a_command_a_chain_step_and_a_make_target(
    new_stage: Path, tmp_path: Path
) -> None:
    env = {**os.environ}
    listing = cli("--help", env=env).stdout
    assert "gain-check" in listing and "Flag items whose peak" in listing
    assert "--limit" in cli("gain-check", "--help", env=env).stdout
    src = make_manifest_dir(tmp_path / "in", [sine_file(tmp_path / "a.wav")])
    out = tmp_path / "out"
    proc = cli("gain-check", src, out, "--limit", "0.5", "--tags", "x", "-j", "1", env=env)
    assert "gain-check: 1 ok of 1 items" in proc.stderr
    (rec,) = read_jsonl(out / "manifest.jsonl")
    assert rec["peak_ok"] is True and rec["tags"] == ["x"]
    bad = cli("gain-check", src, tmp_path / "o2", "--mode", "loud", check=False, env=env)
    assert bad.returncode == 2 and "not one of: flag, drop" in bad.stderr
    config = tmp_path / "chain.yaml"
    config.write_text(
        f"input: {src}\nstages:\n  - gain-check: {{limit: 0.1, mode: drop}}\n", encoding="utf-8"
    )
    proc = cli("run", config, "--workdir", tmp_path / "w", env=env)
    assert read_jsonl(tmp_path / "w" / "01-gain-check" / "rejected.jsonl")[0]["id"] == "a"
    makefile = cli("makefile", config, env=env).stdout
    assert "gain-check" in makefile and "--limit 0.1 --mode drop" in makefile


def test_the_listing_imports_no_stage_module() -> None:
    """`audioprep --help` reads the stage modules' docstrings; it imports none of them."""
    import subprocess
    import sys

    probe = subprocess.run(
        [
            sys.executable,
            "-c",
            "import sys, time; t = time.perf_counter(); from audioprep.cli.app import app\n"
            "try: app(['--help'])\nexcept SystemExit: pass\n"
            "stages = [m for m in sys.modules if m.startswith('audioprep.stages.')]\n"
            "print('STAGES=' + ','.join(stages))\n"
            "print(f'SECONDS={time.perf_counter() - t:.3f}')",
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    lines = probe.stdout.strip().splitlines()
    assert lines[-2] == "STAGES=", lines[-2]
