"""Params validate themselves: the bounds and choices of param() hold from the command line,
a chain's YAML and Python alike, and no number may be NaN or infinite."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
from typer.testing import CliRunner

from audioprep.cli.app import app
from audioprep.core import params as schema
from audioprep.core import registry
from audioprep.core.params import ParamError
from audioprep.testing import make_manifest_dir, sine_file

CASES = [  # (stage, option, value): refused with one sentence
    ("quality", "--min-snr", "nan"),
    ("quality", "--min-loudness", "inf"),
    ("repeats", "--edge", "nan"),
    ("repeats", "--min-keep", "nan"),
    ("repeats", "--max-duration", "inf"),
    ("speaker-filter", "--min-voiced", "nan"),
    ("speaker-filter", "--threshold", "nan"),
    ("features", "--pad-to", "nan"),
    ("trim", "--head", "-1"),
    ("denoise", "--lowpass", "0"),
]


@pytest.fixture(scope="module")
def in_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    tmp = tmp_path_factory.mktemp("params")
    return make_manifest_dir(tmp / "in", [sine_file(tmp / "a.wav", seconds=0.2)])


@pytest.mark.parametrize(("stage", "option", "value"), CASES)
def test_the_command_line_refuses_out_of_bounds_and_non_finite_numbers(
    in_dir: Path, tmp_path: Path, stage: str, option: str, value: str
) -> None:
    out = tmp_path / "out"
    result = CliRunner().invoke(app, [stage, str(in_dir), str(out), option, value, "-j", "1"])
    assert result.exit_code == 2, result.output
    text = result.output.strip()
    assert "Traceback" not in text and option in text, text
    assert len(text.splitlines()) <= 8, text  # one sentence (click frames its own in a box)
    assert not out.exists()


@pytest.mark.parametrize(("stage", "option", "value"), CASES)
def test_python_and_yaml_values_are_held_to_the_same_declaration(
    stage: str, option: str, value: str
) -> None:
    stage_cls = registry.load(stage)
    by_flag = {f.flag: f for f in schema.fields(stage_cls.Params)}
    field = by_flag[option]
    number = float(value)
    with pytest.raises(ParamError, match=option):  # a chain's YAML (`.nan`, `.inf`, -1)
        schema.from_mapping(stage_cls.Params, {field.key: number}, stage=stage)
    params = stage_cls.Params(**{field.name: number})  # Python: the stage refuses it
    with pytest.raises(ParamError, match=option):
        stage_cls(params)


def test_a_chain_yaml_nan_is_refused_at_the_dry_run(in_dir: Path, tmp_path: Path) -> None:
    config = tmp_path / "chain.yaml"
    config.write_text(f"input: {in_dir}\nstages:\n  - features: {{pad-to: .nan}}\n")
    result = CliRunner().invoke(
        app, ["run", str(config), "--workdir", str(tmp_path / "w"), "--dry-run"]
    )
    assert result.exit_code == 2 and "--pad-to nan is not a finite number" in result.output


def test_choices_hold_from_python_and_defaults_are_valid() -> None:
    for name in registry.names():  # every stage builds from its defaults
        stage_cls = registry.load(name)
        stage_cls(stage_cls.Params())
    convert = registry.load("convert")
    with pytest.raises(ParamError, match="--format 'mp3' is not one of"):
        convert(convert.Params(format="mp3"))
    with pytest.raises(ParamError, match="--sample-rate 10 is below the minimum 1000"):
        convert(convert.Params(sample_rate=10))


def test_the_shared_model_options_are_read_by_role() -> None:
    for name in ("segment", "separate", "transcribe", "quality", "speaker-filter"):
        stage_cls = registry.load(name)
        roles = {f.role: f.flag for f in schema.fields(stage_cls.Params) if f.role}
        assert roles.get("device") == "--device", name
        assert stage_cls(stage_cls.Params()).device == "cpu"
    trim = registry.load("trim")
    assert trim(trim.Params()).device is None


@pytest.mark.parametrize("threshold", ["0.75", [1, 2], {"a": 1}, True, None, "NaN", 1e308, -1e308])
def test_a_hostile_decision_threshold_does_not_break_report_or_info(
    in_dir: Path, tmp_path: Path, threshold: object
) -> None:
    import shutil

    d = tmp_path / "dir"
    shutil.copytree(in_dir, d)
    lines = (d / "manifest.jsonl").read_text().splitlines()
    rec = json.loads(lines[0])
    rec["speaker_similarity"] = 0.8
    (d / "manifest.jsonl").write_text(json.dumps(rec) + "\n")
    (d / "rejected.jsonl").write_text(
        json.dumps({"id": "x", "reason": "other voice", "speaker_similarity": 0.2}) + "\n"
    )
    (d / "decision.json").write_text(json.dumps({"threshold": threshold}))
    for args in (["info", str(d)], ["info", str(d), "--json"], ["report", str(d)]):
        result = CliRunner().invoke(app, args)
        assert result.exit_code == 0, (args, result.output)
    summary = json.loads(CliRunner().invoke(app, ["info", str(d), "--json"]).stdout)
    sim = summary["speaker_similarity"]["threshold"]
    assert sim is None or (isinstance(sim, float) and math.isfinite(sim))
    (d / "decision.json").write_text("[1, 2, 3]")  # not even an object
    assert CliRunner().invoke(app, ["info", str(d)]).exit_code == 0
