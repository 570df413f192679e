"""The command line and the presets did not change by accident.

``tests/snapshots/cli.json`` was recorded (``python scripts/cli_snapshot.py --write``) before
the stage-schema refactoring: every command's options, types, defaults and help, the Params a
minimal command line yields, and the Params of every preset. The live CLI must match it except
where :data:`DEVIATIONS` names a deliberate change and says why.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "scripts"))

import cli_snapshot  # noqa: E402

#: JSON-path prefix (``/``-joined keys; list items by index) -> why it differs on purpose.
DEVIATIONS: dict[str, str] = {
    "/commands/slice/params/--search": "slice's `search` parameter was in Params and named in "
    "an error message but had no option; it is now `--search` (issue 12).",
    "/commands/crawl/params/arg0": "crawl's URLs are their own argument (`urls`, optional since "
    "--from-file may give them) instead of one list with OUT_DIR taken off its end.",
    "/commands/crawl/params/arg1": "... and OUT_DIR is the same argument every stage has.",
    "/commands/ingest/params/arg0/required": "ingest's sources are checked by the stage "
    "(`ingest needs at least one file, folder or glob`, exit 2) rather than by the parser.",
    "/commands/crawl/params/--archive/type": "Params hold the path as a string; the value "
    "(made absolute) is the same.",
    # issue 16: new commands and options (the old ones unchanged)
    "/commands/features": "new stage (issue 16).",
    "/commands/tone": "new stage (issue 16).",
    "/commands/tone-train": "new command (issue 16).",
    "/commands/export/params/--caption": "new option for --format spectrogram-captions (issue 16).",
    "/commands/export/params/--format/help": "names the new spectrogram-captions format.",
    "/commands/slice/help": "slice's help shows the --random example (issue 16).",
    **{
        f"{where}/{name}": "slice --random and its options, inert unless --random (issue 16)."
        for name in ("random", "duration", "seed", "overlap_ok", "short")
        for where in (
            "/defaults/slice/params",
            "/presets/asmr/steps/4/params",
            "/presets/demo/steps/4/params",
            "/presets/podcast-voice/steps/5/params",
            "/presets/speech-tts/steps/5/params",
        )
    },
    **{
        f"/commands/slice/params/--{name}": "slice --random and its options (issue 16)."
        for name in ("random", "duration", "seed", "overlap-ok", "short")
    },
}


def _key(item: dict[str, Any], position: int) -> str:
    """Options by their long name, arguments by position: the parameter names inside the code
    (``format_``, ``args``) are not part of the command line."""
    if item.get("kind") == "argument":
        return f"arg{position}"
    return next((o for o in item["opts"] if o.startswith("--")), item["opts"][0])


def _flatten(value: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(value, dict):
        out: dict[str, Any] = {}
        for k, v in value.items():
            if k != "name" or "kind" not in value:
                out.update(_flatten(v, f"{prefix}/{k}"))
        return out or {prefix: {}}
    if isinstance(value, list) and value and isinstance(value[0], dict) and "opts" in value[0]:
        args = [i for i in value if i.get("kind") == "argument"]
        keyed = {_key(i, args.index(i) if i in args else 0): i for i in value}
        return _flatten(keyed, prefix)
    if isinstance(value, list) and value and all(isinstance(i, dict) for i in value):
        return _flatten({str(n): i for n, i in enumerate(value)}, prefix)  # e.g. preset steps
    return {prefix: value}


def _allowed(path: str) -> bool:
    return any(path == p or path.startswith(p + "/") for p in DEVIATIONS)


def test_live_cli_and_presets_match_the_snapshot() -> None:
    recorded = _flatten(json.loads(cli_snapshot.SNAPSHOT.read_text(encoding="utf-8")))
    live = _flatten(json.loads(json.dumps(cli_snapshot.snapshot())))
    diffs = [
        f"{path}: {recorded.get(path, '<absent>')!r} -> {live.get(path, '<absent>')!r}"
        for path in sorted(set(recorded) | set(live))
        if recorded.get(path, "<absent>") != live.get(path, "<absent>") and not _allowed(path)
    ]
    assert not diffs, "the CLI drifted from tests/snapshots/cli.json:\n" + "\n".join(diffs)
