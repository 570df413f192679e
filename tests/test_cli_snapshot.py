"""The command line and the presets did not change by accident.

``tests/snapshots/cli.json`` was recorded (``python scripts/cli_snapshot.py --write``) before
the stage-schema refactoring: every command's options, types, defaults and help, the Params a
minimal command line yields, and the Params of every preset. The live CLI must match it except
where :data:`DEVIATIONS` names a deliberate change and says why. Additions (new stages, new
options, new preset steps) are not differences.
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
    "/commands/quality": "new stage `quality` (issue 14).",
    "/commands/loudness": "new stage `loudness` (issue 14).",
    "/presets/speech-tts/steps": "quality after slice, transcribe and loudness last "
    "(issues 14, 19).",
    "/presets/podcast-voice/steps": "quality after slice, transcribe and loudness last "
    "(issues 14, 19).",
    "/presets/demo/steps": "quality after slice and loudness last (issue 14).",
    "/commands/transcribe": "a new stage: transcribe (issue 19).",
    "/presets/podcast-voice/steps/trim#1": "podcast-voice cuts its feed's repeats (`repeats`) "
    "instead of a fixed 30 s head and tail (issue 15).",
    "/commands/export/params/--format/help": "names the spectrogram-captions format (issue 16).",
    "/commands/slice/help": "slice's help shows the --random example (issue 16).",
}

# Issue 13: the run options every stage command gained, and segment's CNN batch size, renamed
# because --batch-size (items per worker call) is now a run option of every stage.
_RUN_OPTIONS_WHY = (
    "issue 13: --executor local|ray, --ray-address and --batch-size (items per worker call) "
    "are run options of every stage (schema.RunOptions)."
)
for _stage in (
    "crawl", "ingest", "convert", "trim", "denoise", "segment", "slice", "speaker-filter",
    "separate",
):  # fmt: skip
    for _flag in ("--executor", "--ray-address", "--batch-size"):
        DEVIATIONS[f"/commands/{_stage}/params/{_flag}"] = _RUN_OPTIONS_WHY
for _flag in ("--executor", "--ray-address", "--batch-size", "--estimate"):
    DEVIATIONS[f"/commands/run/params/{_flag}"] = (
        "issue 13: run options for every stage; --estimate N."
    )
_CNN_WHY = (
    "issue 13: segment's CNN batch size (patches per forward pass) is now --cnn-batch-size "
    "(field cnn_batch_size): --batch-size is the run option of every stage."
)
DEVIATIONS["/commands/segment/params/--cnn-batch-size"] = _CNN_WHY
DEVIATIONS["/defaults/speaker-filter/params/batch_size"] = (
    "issues 13/18: speaker-filter's windows per forward pass are --window-batch; --batch-size "
    "(clips per call, embedded together) is the run option of every stage."
)
DEVIATIONS["/commands/doctor"] = "issue 13: `audioprep doctor`, devices per engine (a new command)."
for _path in ("/defaults/segment/params", "/presets/asmr/steps/segment#1/params",
              "/presets/demo/steps/segment#1/params",
              "/presets/podcast-voice/steps/segment#1/params",
              "/presets/speech-tts/steps/segment#1/params"):  # fmt: skip
    DEVIATIONS[f"{_path}/batch_size"] = _CNN_WHY
    DEVIATIONS[f"{_path}/cnn_batch_size"] = _CNN_WHY


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
    if isinstance(value, list) and value and isinstance(value[0], dict) and "stage" in value[0]:
        seen: dict[str, int] = {}
        keyed = {}
        for step in value:  # a preset's steps by stage name: a stage added to it is an addition
            seen[step["stage"]] = seen.get(step["stage"], 0) + 1
            keyed[f"{step['stage']}#{seen[step['stage']]}"] = step
        return _flatten(keyed, prefix)
    if isinstance(value, list) and value and isinstance(value[0], dict) and "opts" in value[0]:
        args = [i for i in value if i.get("kind") == "argument"]
        keyed = {_key(i, args.index(i) if i in args else 0): i for i in value}
        return _flatten(keyed, prefix)
    return {prefix: value}


def _allowed(path: str) -> bool:
    return any(path == p or path.startswith(p + "/") for p in DEVIATIONS)


def test_live_cli_and_presets_match_the_snapshot() -> None:
    recorded = _flatten(json.loads(cli_snapshot.SNAPSHOT.read_text(encoding="utf-8")))
    live = _flatten(json.loads(json.dumps(cli_snapshot.snapshot())))
    # Only what was recorded is checked: a command, option or preset step added later (by
    # another stage or issue) breaks no command line that worked before.
    diffs = [
        f"{path}: {recorded[path]!r} -> {live.get(path, '<absent>')!r}"
        for path in sorted(recorded)
        if recorded[path] != live.get(path, "<absent>") and not _allowed(path)
    ]
    assert not diffs, "the CLI drifted from tests/snapshots/cli.json:\n" + "\n".join(diffs)
