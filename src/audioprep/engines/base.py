"""The one engine shape: lifecycle, settings, weights, and the registry every stage picks from.

An engine wraps one model behind its family's protocol (``engines/<family>/base.py``: a
segmenter returns segments, a recogniser transcripts, a separator stems, an embedder vectors,
a scorer scores, an enhancer audio). Every engine, whatever its family, is a subclass of
:class:`Engine`:

- ``name`` (what ``--engine`` takes), ``family`` (the folder it lives in), ``devices``;
- ``from_settings(Settings)`` builds it once per worker (heavy imports happen there);
- ``close()`` frees it (the stage's ``teardown`` calls it; no ``atexit``);
- ``versions()`` names the libraries and model files whose change changes its output;
- ``weights()`` lists the model files it needs and where they come from (``audioprep models``).

Engines are found without importing them: every module in ``engines/<family>/`` that defines
a class with ``name = "..."`` and ``family = "..."`` at class level is registered (``ast``), so
``audioprep --help`` and ``--engine`` choices import no model library. Engines outside the
package register through the ``audioprep.engines`` entry-point group (``family/name =
module:Class``) or, in a test, with :func:`register`.

>>> sorted(names("segment"))
['ina', 'silero']
>>> info("segment", "ina").module
'audioprep.engines.segment.ina'
"""

from __future__ import annotations

import ast
import dataclasses
import functools
import importlib
import importlib.metadata
from collections.abc import Mapping
from pathlib import Path
from typing import Any, ClassVar, TypeVar

from audioprep.errors import UsageError

PACKAGE_DIR = Path(__file__).resolve().parent
ENTRY_POINTS = "audioprep.engines"

E = TypeVar("E", bound="Engine")


@dataclasses.dataclass(frozen=True)
class Settings:
    """What any engine may be built from; each engine takes what applies to it.

    ``options`` carries the family's own settings by name (``model``, ``vad_engine``,
    ``batch_size`` ...), so a new family needs no new Settings class.

    >>> Settings(device="cpu", options={"model": "base"}).option("model")
    'base'
    >>> Settings().option("beam", 5)
    5
    """

    device: str = "cpu"
    model_dir: Path | None = None
    threads: int = 1
    options: Mapping[str, Any] = dataclasses.field(default_factory=dict)

    def option(self, key: str, default: Any = None) -> Any:
        return self.options.get(key, default)


@dataclasses.dataclass(frozen=True)
class Weights:
    """Model files an engine needs: where under the model directory, and where they come from.

    >>> w = Weights("spleeter/2stems", ("checkpoint",), "Deezer's 2stems release")
    >>> w.present(Path("/nonexistent"))
    False
    """

    path: str  # relative to the model directory, e.g. "whisper/base"
    files: tuple[str, ...]
    origin: str  # where they come from (a package, a URL, `make setup`)
    package: str | None = None  # a pip package that ships them, if any

    def present(self, model_dir: Path) -> bool:
        base = model_dir / self.path
        return all((base / f).is_file() and (base / f).stat().st_size > 0 for f in self.files)


class Engine:
    """Base of every engine: one lifecycle, whatever the family."""

    name: ClassVar[str] = ""
    family: ClassVar[str] = ""
    devices: ClassVar[tuple[str, ...]] = ("cpu",)
    #: The runtime library whose device support `audioprep doctor` probes
    #: ("torch", "tensorflow", "onnxruntime", "ctranslate2", "spleeter", "numpy", ...).
    runtime: ClassVar[str] = "numpy"
    #: One line for `--engine` help and `audioprep doctor`.
    summary: ClassVar[str] = ""

    @classmethod
    def from_settings(cls: type[E], settings: Settings) -> E:
        """Build the engine (load the model). Subclasses override."""
        return cls()

    def close(self) -> None:
        """Free the model (threads, worker processes, GPU memory). Safe to call twice."""

    @classmethod
    def versions(cls) -> dict[str, str]:
        """Library and model versions that determine the output (for stage.json and caches)."""
        return {}

    @classmethod
    def weights(cls) -> tuple[Weights, ...]:
        """The model files this engine needs (none for engines whose package ships them)."""
        return ()

    def __enter__(self: E) -> E:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


@dataclasses.dataclass(frozen=True)
class EngineInfo:
    """A registered engine, known without importing it."""

    family: str
    name: str
    module: str
    cls: str


def _classes_in(path: Path) -> list[tuple[str, str, str]]:
    """``(class, family, name)`` of classes in ``path`` with string ``name`` and ``family``."""
    try:
        tree = ast.parse(path.read_text(encoding="utf-8"))
    except (OSError, SyntaxError, ValueError):
        return []
    found = []
    for node in tree.body:
        if not isinstance(node, ast.ClassDef):
            continue
        attrs: dict[str, str] = {}
        for stmt in node.body:
            target = None
            if isinstance(stmt, ast.Assign) and len(stmt.targets) == 1:
                target, value = stmt.targets[0], stmt.value
            elif isinstance(stmt, ast.AnnAssign) and stmt.value is not None:
                target, value = stmt.target, stmt.value
            if (
                isinstance(target, ast.Name)
                and isinstance(value, ast.Constant)
                and isinstance(value.value, str)
            ):
                attrs[target.id] = value.value
        if attrs.get("name") and attrs.get("family"):
            found.append((node.name, attrs["family"], attrs["name"]))
    return found


_EXTRA: dict[tuple[str, str], EngineInfo] = {}
_LOADED: dict[tuple[str, str], type[Engine]] = {}


@functools.lru_cache(maxsize=1)
def _scan() -> dict[tuple[str, str], EngineInfo]:
    found: dict[tuple[str, str], EngineInfo] = {}
    for folder in sorted(p for p in PACKAGE_DIR.iterdir() if p.is_dir()):
        if folder.name.startswith(("_", ".")):
            continue
        for path in sorted(folder.glob("*.py")):
            if path.name.startswith("_"):
                continue
            module = f"audioprep.engines.{folder.name}.{path.stem}"
            for cls, family, name in _classes_in(path):
                found.setdefault((family, name), EngineInfo(family, name, module, cls))
    try:
        eps = importlib.metadata.entry_points(group=ENTRY_POINTS)
    except Exception:  # noqa: BLE001 - a broken distribution must not hide the built-ins
        eps = ()  # type: ignore[assignment]
    for ep in eps:
        family, _, name = ep.name.partition("/")
        module, _, cls = ep.value.partition(":")
        if family and name and module and cls:
            found.setdefault((family, name), EngineInfo(family, name, module, cls))
    return found


def available(family: str | None = None) -> list[EngineInfo]:
    """Every registered engine (of ``family``), sorted by family and name."""
    table = {**_scan(), **_EXTRA}
    return [table[k] for k in sorted(table) if family is None or k[0] == family]


def families() -> list[str]:
    return sorted({e.family for e in available()})


def names(family: str) -> list[str]:
    """The engine names of ``family``: the choices of a stage's ``--engine``."""
    return [e.name for e in available(family)]


def info(family: str, name: str) -> EngineInfo:
    """The registry entry; UsageError naming the choices where there is none."""
    table = {**_scan(), **_EXTRA}
    try:
        return table[(family, name)]
    except KeyError:
        raise UsageError(
            f"unknown {family} engine {name!r} (engines: {', '.join(names(family)) or 'none'})"
        ) from None


def engine_class(family: str, name: str) -> type[Engine]:
    """Import and return the class of engine ``family/name``."""
    key = (family, name)
    if key not in _LOADED:
        entry = info(family, name)
        cls = getattr(importlib.import_module(entry.module), entry.cls)
        if not (isinstance(cls, type) and issubclass(cls, Engine)):
            raise UsageError(f"{entry.module}:{entry.cls} is not an audioprep Engine")
        _LOADED[key] = cls
    return _LOADED[key]


def load(family: str, name: str, settings: Settings | None = None) -> Any:
    """Build engine ``family/name`` from ``settings`` (its model loaded)."""
    return engine_class(family, name).from_settings(settings or Settings())


def register(cls: type[Engine]) -> type[Engine]:
    """Register an engine class in this process (tests, plug-ins); usable as a decorator."""
    key = (cls.family, cls.name)
    _EXTRA[key] = EngineInfo(cls.family, cls.name, cls.__module__, cls.__qualname__)
    _LOADED[key] = cls
    return cls


def unregister(family: str, name: str) -> None:
    _EXTRA.pop((family, name), None)
    _LOADED.pop((family, name), None)
