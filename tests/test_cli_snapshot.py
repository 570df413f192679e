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
DEVIATIONS: dict[str, str] = {}


def _flatten(value: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(value, dict):
        out: dict[str, Any] = {}
        for k, v in value.items():
            out.update(_flatten(v, f"{prefix}/{k}"))
        return out or {prefix: {}}
    if isinstance(value, list) and value and isinstance(value[0], dict) and "name" in value[0]:
        return _flatten({item["name"]: item for item in value}, prefix)
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
