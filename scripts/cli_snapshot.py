"""Record the command line's surface and every preset's parameters as JSON.

Every command with its options (names, flags, types, choices, bounds, defaults, help) and,
for each ``configs/*.yaml`` preset, the stage parameters a chain run would use. The test
``tests/test_cli_snapshot.py`` compares the live CLI with the committed snapshot, so a
refactoring that changes an option, a default or a preset's meaning fails loudly.

    python scripts/cli_snapshot.py            # print the live snapshot
    python scripts/cli_snapshot.py --write    # rewrite tests/snapshots/cli.json
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
SNAPSHOT = REPO / "tests" / "snapshots" / "cli.json"
#: Stand-ins so the snapshot does not depend on where the repository or ../shared live.
SHARED_PLACEHOLDER = "/SHARED"


def _jsonable(value: Any) -> Any:
    return json.loads(json.dumps(value, default=str))


def _type_name(param: Any) -> str:
    """The parameter's value type, whichever click typer vendors."""
    descriptor = getattr(param, "type_descriptor", None)
    if descriptor is not None:
        annotation = descriptor.annotation
        return getattr(annotation, "__name__", None) or str(annotation)
    kind = param.type
    return getattr(kind, "name", type(kind).__name__)


def _param(param: Any) -> dict[str, Any]:
    entry: dict[str, Any] = {
        "name": param.name,
        "kind": param.param_type_name,
        "opts": list(param.opts),
        "secondary_opts": list(getattr(param, "secondary_opts", []) or []),
        "type": _type_name(param),
        "default": _jsonable(param.default if not callable(param.default) else "<callable>"),
        "required": bool(param.required),
        "multiple": bool(getattr(param, "multiple", False)),
        "nargs": param.nargs,
        "is_flag": bool(getattr(param, "is_flag", False)),
        "help": getattr(param, "help", None),
        "min": getattr(param, "min", None),
        "max": getattr(param, "max", None),
    }
    choices = getattr(getattr(param, "type", None), "choices", None)
    if choices:
        entry["choices"] = list(choices)
    return entry


def commands() -> dict[str, Any]:
    """Every command of ``audioprep`` and its parameters, as the live CLI declares them."""
    import typer.main

    from audioprep.cli import app

    group = typer.main.get_command(app)
    ctx = group.make_context("audioprep", ["--help"], resilient_parsing=True)
    out: dict[str, Any] = {}
    for name in sorted(group.list_commands(ctx)):  # type: ignore[attr-defined]
        _, cmd, _ = group.resolve_command(ctx, [name])  # type: ignore[attr-defined]
        params = [
            _param(p) for p in cmd.params if p.name not in ("help",) and "--help" not in p.opts
        ]
        out[name] = {
            "short_help": cmd.get_short_help_str(limit=300),
            "help": (cmd.help or "").strip(),
            "params": params,
        }
    return out


def presets() -> dict[str, Any]:
    """For each preset config, each stage's parameters as a chain run would build them."""

    saved = {k: os.environ.get(k) for k in ("AUDIOPREP_SHARED", "PODCAST_FEED")}
    os.environ["AUDIOPREP_SHARED"] = SHARED_PLACEHOLDER
    os.environ.pop("PODCAST_FEED", None)
    out: dict[str, Any] = {}
    try:
        _presets_into(out)
    finally:  # leave the environment as it was (tests run in the same process)
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
    return out


def _presets_into(out: dict[str, Any]) -> None:
    import dataclasses

    from audioprep.chain import load_chain, plan

    with tempfile.TemporaryDirectory() as tmp:
        for config in sorted((REPO / "configs").glob("*.yaml")):
            chain = load_chain(config)
            steps = []
            for p in plan(chain, Path(tmp) / "w"):
                params = _jsonable(dataclasses.asdict(p.call.stage.params))
                text = json.dumps(params).replace(str(REPO / "configs"), "<CONFIGS>")
                steps.append(
                    {
                        "stage": p.call.stage.name,
                        "params": json.loads(text),
                        "jobs": p.call.jobs,
                        "fail_fast": p.call.fail_fast,
                    }
                )
            out[config.stem] = {
                "jobs": chain.jobs,
                "stop_on_failure": chain.stop_on_failure,
                "steps": steps,
            }


#: A minimal command line per stage: the Params it yields are the command's defaults.
MINIMAL = {
    "crawl": ["crawl", "https://a.org/x.mp3", "out"],
    "ingest": ["ingest", "media/", "out"],
    "speaker-filter": ["speaker-filter", "in", "out", "--enrol", "dominant"],
}


def defaults() -> dict[str, Any]:
    """The Params each stage command builds from a minimal command line."""
    import dataclasses

    from audioprep.cli import parse_stage_command

    out: dict[str, Any] = {}
    stages = ("convert", "crawl", "denoise", "ingest", "segment", "separate", "slice")
    for name in (*stages, "speaker-filter", "trim"):
        argv = MINIMAL.get(name, [name, "in", "out"])
        call = parse_stage_command(argv)
        out[name] = {
            "argv": argv,
            "params": _jsonable(dataclasses.asdict(call.stage.params)),
            "jobs": call.jobs,
            "fail_fast": call.fail_fast,
        }
    return out


def snapshot() -> dict[str, Any]:
    """The whole snapshot: ``{"commands": ..., "defaults": ..., "presets": ...}``."""
    return {"commands": commands(), "defaults": defaults(), "presets": presets()}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--write", action="store_true", help=f"rewrite {SNAPSHOT}")
    args = parser.parse_args(argv)
    text = json.dumps(snapshot(), indent=1, sort_keys=True) + "\n"
    if args.write:
        SNAPSHOT.parent.mkdir(parents=True, exist_ok=True)
        SNAPSHOT.write_text(text, encoding="utf-8")
        print(f"wrote {SNAPSHOT}", file=sys.stderr)
    else:
        sys.stdout.write(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
