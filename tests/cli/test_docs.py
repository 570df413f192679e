"""The docs keep up with the code: the CLI reference is generated, every stage has its page."""

from __future__ import annotations

import sys
from pathlib import Path

from audioprep.core import registry

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "scripts"))

import gen_cli_docs  # noqa: E402


def test_the_committed_cli_reference_is_what_the_generator_writes() -> None:
    committed = gen_cli_docs.TARGET.read_text(encoding="utf-8")
    assert committed == gen_cli_docs.render(), "docs/cli.md is out of date: run `make docs`"


def test_every_stage_has_a_page_and_a_line_in_the_readme() -> None:
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    assert readme == gen_cli_docs.render_readme(readme), "README's stage table: run `make docs`"
    assert len(readme.encode()) < 10_000
    for name in registry.names():
        assert (REPO / "docs" / "stages" / f"{name}.md").is_file(), f"docs/stages/{name}.md"
        assert f"(docs/stages/{name}.md)" in readme, f"README has no line for {name}"
