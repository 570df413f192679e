"""A stage's --help reads in an 80-column terminal (issue 27: three words a line before)."""

from __future__ import annotations

import statistics

import pytest
from typer.testing import CliRunner

from audioprep.cli.app import app
from audioprep.core import registry


def _help_lines(text: str) -> list[str]:
    """The help text of every option (the column right of the option names), line by line:
    the help column is where most option lines' help starts."""
    import collections
    import re

    lines = text.splitlines()
    start = next(i for i, ln in enumerate(lines) if re.match(r"^\W*Options", ln))
    rows = [ln.rstrip(" │").replace("│", " ") for ln in lines[start + 1 :] if "╰" not in ln]
    starts = collections.Counter()
    for ln in rows:
        m = re.match(r"^\s+-\S.*?\S(\s{2,})(?=\S)", ln)
        if m:
            starts[m.end()] += 1
    col = starts.most_common(1)[0][0]
    return [
        ln[col:].strip()
        for ln in rows
        if ln[col:].strip() and not ln[:col].strip().startswith("-h")
    ]


@pytest.mark.parametrize("name", registry.names())
def test_stage_help_reads_in_80_columns(name: str) -> None:
    result = CliRunner().invoke(app, [name, "--help"], env={"COLUMNS": "80"})
    assert result.exit_code == 0, result.output
    assert max(len(ln) for ln in result.output.splitlines()) <= 80
    helps = _help_lines(result.output)
    assert max(len(ln) for ln in helps) >= 40, (name, result.output)  # the help column
    assert statistics.mean(len(ln.split()) for ln in helps) >= 4, (name, result.output)
    assert "…" not in result.output  # no option name cut short


def test_wide_terminals_keep_the_rich_layout() -> None:
    result = CliRunner().invoke(app, ["quality", "--help"], env={"COLUMNS": "160"})
    assert result.exit_code == 0 and "╭─ Options" in result.output
    assert statistics.mean(len(ln.split()) for ln in _help_lines(result.output)) >= 5
