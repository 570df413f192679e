"""The stage registry: every module in ``audioprep/stages/`` is a stage, found without importing.

A stage named ``speaker-filter`` lives in ``audioprep/stages/speaker_filter.py``; the first
line of the module's docstring (``"speaker-filter: Keep only the target voice..."``) is its
one-line help. Listing reads the files (``ast``), so ``audioprep --help`` imports no stage and
no numpy; :func:`load` imports one stage when it is used.

>>> "convert" in names()
True
>>> load("convert").name
'convert'
>>> info("trim").short_help.startswith("Strip a fixed intro")
True

A stage outside the package registers through the ``audioprep.stages`` entry-point group of
its distribution (``gain-check = mypackage.gain_check``: the command name, then the module that
defines the stage); it is found the same way, by reading the module's file.
"""

from __future__ import annotations

import ast
import dataclasses
import functools
import importlib
import importlib.machinery
import pkgutil
import re
from pathlib import Path
from typing import Any

from audioprep.errors import UsageError

PACKAGE = "audioprep.stages"
ENTRY_POINT_GROUP = "audioprep.stages"


@dataclasses.dataclass(frozen=True)
class StageInfo:
    """A registered stage, known without importing it."""

    name: str  # the command name, e.g. "speaker-filter"
    module: str  # e.g. "audioprep.stages.speaker_filter"
    path: Path
    short_help: str  # first line of the module docstring, "name: " prefix removed
    doc: str  # the whole module docstring


def _docstring(path: Path) -> str:
    try:
        tree = ast.parse(path.read_text(encoding="utf-8"))
    except (OSError, SyntaxError, ValueError):
        return ""
    return ast.get_docstring(tree) or ""


def _short_help(name: str, doc: str) -> str:
    first = doc.strip().splitlines()[0].strip() if doc.strip() else ""
    first = re.sub(rf"^{re.escape(name)}\s*:\s*", "", first)
    return first[:1].upper() + first[1:]


@functools.lru_cache(maxsize=1)
def _scan() -> dict[str, StageInfo]:
    package = importlib.import_module(PACKAGE)
    found: dict[str, StageInfo] = {}
    for module in pkgutil.iter_modules(package.__path__):
        if module.name.startswith("_") or module.ispkg:
            continue
        finder_path = Path(getattr(module.module_finder, "path", ""))
        path = finder_path / f"{module.name}.py"
        name = module.name.replace("_", "-")
        doc = _docstring(path)
        found.setdefault(
            name,
            StageInfo(
                name=name,
                module=f"{PACKAGE}.{module.name}",
                path=path,
                short_help=_short_help(name, doc),
                doc=doc,
            ),
        )
    for name, module_name in _entry_points():
        spec = _find_spec(module_name)
        if spec is None or not spec.origin:
            continue
        path = Path(spec.origin)
        doc = _docstring(path)
        found.setdefault(
            name,
            StageInfo(
                name=name,
                module=module_name,
                path=path,
                short_help=_short_help(name, doc),
                doc=doc,
            ),
        )
    return dict(sorted(found.items()))


def _entry_points() -> list[tuple[str, str]]:
    """(stage name, module) of every ``audioprep.stages`` entry point installed."""
    from importlib.metadata import entry_points

    return [
        (ep.name, ep.value.split(":")[0].strip()) for ep in entry_points(group=ENTRY_POINT_GROUP)
    ]


def _find_spec(module: str) -> importlib.machinery.ModuleSpec | None:
    """The module's spec, found without running it (its parent packages are imported)."""
    import importlib.util

    try:
        return importlib.util.find_spec(module)
    except (ImportError, ValueError):
        return None


def available() -> dict[str, StageInfo]:
    """Every registered stage by name, sorted by name."""
    return _scan()


def names() -> list[str]:
    """The names of every registered stage."""
    return list(_scan())


def info(name: str) -> StageInfo:
    """The registry entry of stage ``name``; UsageError listing the stages if there is none."""
    try:
        return _scan()[name]
    except KeyError:
        raise UsageError(f"unknown stage {name!r} (stages: {', '.join(names())})") from None


def load(name: str) -> type:
    """Import stage ``name`` and return its class (the Stage subclass with that ``name``)."""
    from audioprep.core.stage import Stage

    module = importlib.import_module(info(name).module)
    classes = [
        obj
        for obj in vars(module).values()
        if isinstance(obj, type)
        and issubclass(obj, Stage)
        and obj.__module__ == module.__name__
        and getattr(obj, "name", "") == name
    ]
    if len(classes) != 1:
        raise UsageError(
            f"{module.__name__} must define exactly one Stage subclass with name = {name!r}, "
            f"found {len(classes)}"
        )
    return classes[0]


def record_fields(*, exported: bool = False) -> tuple[Any, ...]:
    """Every record field the registered stages declare (``Stage.record_fields``), in stage
    order, the core fields of the manifest format left out (they come first wherever fields
    are listed); with ``exported``, only the ones exports carry. Imports every stage module.

    >>> "quality" in [f.name for f in record_fields()]
    True
    """
    from audioprep.manifests.fields import CORE_FIELDS

    seen = {f.name for f in CORE_FIELDS}
    out = []
    for name in names():
        for f in getattr(load(name), "record_fields", ()):
            if f.name not in seen and not (exported and f.export == "none"):
                seen.add(f.name)
                out.append(f)
    return tuple(out)


def refresh() -> None:
    """Forget the scan (after a module was added to a stages folder)."""
    _scan.cache_clear()
