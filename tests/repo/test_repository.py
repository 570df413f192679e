"""The repository itself: no merge-conflict remains, no stray profiles, the layers of the package.

A module may import only from its own layer or the layers below it (listed low to high in
:data:`LAYERS`); imports inside functions count too (they are how heavy engines load lazily,
and still run the wrong way when they point up). `audioprep.testing` is for tests only.
"""

from __future__ import annotations

import ast
import re
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
PACKAGE = REPO / "src" / "audioprep"

#: Low to high. A module in layer i may import from layers 0..i.
LAYERS = [
    {"errors", "__init__"},
    {"dsp"},
    {"manifests"},
    {"core"},
    {"text"},
    {"engines"},
    {"crawl"},
    {"stages"},
    {"exports"},
    {"reports"},
    {"run"},
    {"chains"},
    {"cli", "__main__"},
    {"testing"},
]
RANK = {name: i for i, names in enumerate(LAYERS) for name in names}
#: Modules that sit in a lower layer than their folder: the report's widgets are what stage
#: sections draw with, so they sit with text/ (below engines and stages).
MODULE_RANK = {"reports.widgets": RANK["text"]}
#: Imports that run up the layers on purpose, each with its reason.
ALLOWED = {
    # the stage registry loads a stage module by name: that is its job
    ("core", "stages"),
    # a stage's report_section classmethod is called by the report, which passes its widgets in
}


def _rank(module: str) -> int | None:
    """The layer of ``audioprep.x.y`` (None outside the package or for an unknown folder)."""
    parts = module.split(".")
    if parts[0] != "audioprep":
        return None
    if len(parts) == 1:
        return RANK["__init__"]
    sub = ".".join(parts[1:3])
    if sub in MODULE_RANK:
        return MODULE_RANK[sub]
    return RANK.get(parts[1])


def _tracked() -> list[str]:
    try:
        out = subprocess.run(
            ["git", "ls-files"], cwd=REPO, capture_output=True, text=True, check=True
        ).stdout
    except (OSError, subprocess.CalledProcessError):
        pytest.skip("not a git checkout")
    return out.splitlines()


def test_no_merge_conflict_remains_anywhere() -> None:
    marker = re.compile(rb"^(<<<<<<<( |$)|=======$|>>>>>>>( |$))", re.M)
    found = []
    for name in _tracked():
        path = REPO / name
        if not path.is_file() or path.stat().st_size > 5_000_000:
            continue
        data = path.read_bytes()
        if b"\0" in data[:4096]:
            continue
        for m in marker.finditer(data):
            line = data[: m.start()].count(b"\n") + 1
            found.append(f"{name}:{line}")
    assert not found, f"merge-conflict markers: {found}"


def test_no_profile_or_output_dump_is_tracked() -> None:
    bad = [n for n in _tracked() if n.endswith((".out", ".prof", ".pstats"))]
    assert not bad


def test_at_most_six_modules_at_the_top_of_the_package() -> None:
    top = sorted(p.name for p in PACKAGE.glob("*.py"))
    assert len(top) <= 6, top


def _imports(path: Path) -> list[tuple[int, str]]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    here = list(path.relative_to(PACKAGE.parent).with_suffix("").parts[:-1])
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, a.name) for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = here[: len(here) - node.level + 1]
                module = ".".join(base + ([node.module] if node.module else []))
            else:
                module = node.module or ""
            # `from audioprep.reports import widgets` imports audioprep.reports.widgets
            found += [(node.lineno, f"{module}.{a.name}") for a in node.names]
    return found


def test_no_module_imports_from_a_layer_above_it() -> None:
    wrong = []
    for path in sorted(PACKAGE.rglob("*.py")):
        rel = path.relative_to(PACKAGE)
        own = rel.parts[0].removesuffix(".py")
        own_rank = _rank("audioprep." + ".".join(rel.with_suffix("").parts))
        if own not in RANK or own_rank is None:
            wrong.append(f"{rel}: its folder is in no layer (add it to LAYERS)")
            continue
        for line, module in _imports(path):
            rank = _rank(module)
            if rank is None or module == "audioprep":
                continue
            layer = module.split(".")[1]
            if rank > own_rank and (own, layer) not in ALLOWED:
                wrong.append(f"{rel}:{line} imports {module} (layer {own_rank} < {rank})")
    assert not wrong, "\n".join(wrong)
