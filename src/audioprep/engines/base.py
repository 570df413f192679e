"""The one engine shape: lifecycle, settings, weights, and the registry every stage picks from.

An engine wraps one model behind its family's protocol (``engines/<family>/base.py``: a
segmenter returns segments, a recogniser transcripts, a separator stems, an embedder vectors,
a scorer scores, an enhancer audio). Every engine, whatever its family, is a subclass of
:class:`Engine`:

- ``name`` (what ``--engine`` takes), ``family`` (the folder it lives in), ``devices``;
- ``from_settings(Settings)`` builds it once per worker (heavy imports happen there);
- ``close()`` frees it (the stage's ``teardown`` calls it; no ``atexit``);
- ``versions()`` names the libraries and model files whose change changes its output;
- ``weights()`` lists the model files it needs and where they come from (``audioprep models``);
- ``check(settings)`` refuses, in the main process, settings it cannot run with (a device it
  lacks, a missing model) in one sentence; ``used_options(settings)`` says which settings it
  reads, resolved (what a stage records in stage.json).

Whatever differs between two engines of a family is an attribute or a method of the engine,
never a branch on its name in a stage.

Engines are found without importing them: every module in ``engines/<family>/`` that defines
a class with ``name = "..."`` and ``family = "..."`` at class level is registered (``ast``;
the class's other literal attributes, such as ``devices`` or ``summary``, are read the same
way), so ``audioprep --help`` and ``--engine`` choices import no model library. Engines outside the
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
import hashlib
import importlib
import importlib.metadata
import sys
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
    used_by: str = ""  # the option that needs them, e.g. "segment --vad-engine sm"

    def present(self, model_dir: Path) -> bool:
        base = model_dir / self.path
        return all((base / f).is_file() and (base / f).stat().st_size > 0 for f in self.files)

    @property
    def label(self) -> str:
        """``path``, or ``path/file`` for a single file: what ``audioprep models`` prints.

        >>> Weights("inaSpeechSegmenter", ("a.hdf5",), "x").label
        'inaSpeechSegmenter/a.hdf5'
        """
        return f"{self.path}/{self.files[0]}" if len(self.files) == 1 else self.path

    def missing_message(self, model_dir: Path, why: str = "") -> str:
        """One sentence: which files are missing, where to put them, where they come from
        (``why``: a clause after "is not in DIR", e.g. " and could not be downloaded").

        >>> Weights("x/y", ("a.bin",), "`make setup`").missing_message(Path("/m"))[:60]
        'model x/y/a.bin is not in /m: put a.bin from `make setup` in'
        """
        return (
            f"model {self.label} is not in {model_dir}{why}: put {', '.join(self.files)} from "
            f"{self.origin} into {model_dir / self.path}/, or point --model-dir (or "
            "AUDIOPREP_MODEL_DIR) at a folder that has it."
        )


def setup_dir() -> Path:
    """Where `make setup` puts the weights it installs (Whisper's, CAM++'s): a folder inside the
    Python environment (``<venv>/share/audioprep/models``), looked in after the model directory,
    so they are found whatever ``AUDIOPREP_MODEL_DIR`` says.

    >>> setup_dir().parts[-3:]
    ('share', 'audioprep', 'models')
    """
    return Path(sys.prefix) / "share" / "audioprep" / "models"


def sha256(path: Path) -> str:
    """The sha256 of a file, read in 1 MiB blocks."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def package_versions(*packages: str) -> dict[str, str]:
    """``{package: version}`` of the installed ``packages`` (those not installed left out).

    >>> list(package_versions("numpy", "no-such-package-here"))
    ['numpy']
    """
    from importlib.metadata import PackageNotFoundError, version

    out = {}
    for pkg in packages:
        try:
            out[pkg] = version(pkg)
        except PackageNotFoundError:
            continue
    return out


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
    #: The ``Settings.options`` keys it reads (``"model_dir"`` too when it reads that).
    options: ClassVar[tuple[str, ...]] = ()

    @classmethod
    def check(cls, settings: Settings) -> None:
        """Refuse settings this engine cannot run with, in the main process (UsageError or
        AudioprepError, one sentence). By default: a device not in ``devices``."""
        if settings.device not in cls.devices:
            raise UsageError(
                f"--device {settings.device}: the {cls.name} engine runs on "
                f"{' or '.join(cls.devices)} only."
            )

    @classmethod
    def used_options(cls, settings: Settings) -> dict[str, Any]:
        """The settings this engine reads, resolved (``options`` that ``settings`` holds, and
        ``model_dir``): what a stage records for it in stage.json."""
        out = {k: settings.options[k] for k in cls.options if k in settings.options}
        if "model_dir" in cls.options and settings.model_dir is not None:
            out["model_dir"] = settings.model_dir
        return out

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

    @classmethod
    def weight_dirs(cls, model_dir: Path) -> tuple[Path, ...]:
        """Where its weights are looked for, in order: the model directory, and any folder
        set-up installs them into (an engine that has one overrides this)."""
        return (model_dir,)

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
    #: The class's literal attributes (strings, tuples of strings), read without importing.
    attrs: tuple[tuple[str, Any], ...] = ()

    def attr(self, key: str, default: Any = None) -> Any:
        """A literal class attribute (``summary``, ``devices``, ``models``...) without importing;
        ``default`` where the class does not spell it out."""
        return dict(self.attrs).get(key, default)


def _literal(value: ast.expr) -> Any:
    """A string or a tuple of strings spelled in the source, else None."""
    if isinstance(value, ast.Constant) and isinstance(value.value, str):
        return value.value
    if isinstance(value, ast.Tuple) and all(
        isinstance(e, ast.Constant) and isinstance(e.value, str) for e in value.elts
    ):
        return tuple(e.value for e in value.elts)  # type: ignore[attr-defined]
    return None


def _classes_in(path: Path) -> list[tuple[str, str, str, tuple[tuple[str, Any], ...]]]:
    """``(class, family, name, attrs)`` of classes in ``path`` with string ``name`` and
    ``family`` (``attrs``: every literal class attribute)."""
    try:
        tree = ast.parse(path.read_text(encoding="utf-8"))
    except (OSError, SyntaxError, ValueError):
        return []
    found = []
    for node in tree.body:
        if not isinstance(node, ast.ClassDef):
            continue
        attrs: dict[str, Any] = {}
        for stmt in node.body:
            target = None
            if isinstance(stmt, ast.Assign) and len(stmt.targets) == 1:
                target, value = stmt.targets[0], stmt.value
            elif isinstance(stmt, ast.AnnAssign) and stmt.value is not None:
                target, value = stmt.target, stmt.value
            if isinstance(target, ast.Name):
                literal = _literal(value)
                if literal is not None:
                    attrs[target.id] = literal
        name, family = attrs.get("name"), attrs.get("family")
        if isinstance(name, str) and name and isinstance(family, str) and family:
            found.append((node.name, family, name, tuple(attrs.items())))
    return found


_EXTRA: dict[tuple[str, str], EngineInfo] = {}
_EXTRA_CLASSES: dict[tuple[str, str], type[Engine]] = {}
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
            for cls, family, name, attrs in _classes_in(path):
                found.setdefault((family, name), EngineInfo(family, name, module, cls, attrs))
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


def rescan() -> None:
    """Forget the registry scan (a plug-in installed, or a file dropped, while running)."""
    _scan.cache_clear()
    _LOADED.clear()
    _LOADED.update({(e.family, e.name): _EXTRA_CLASSES[k] for k, e in _EXTRA.items()})


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
    attrs = tuple(
        (k, getattr(cls, k)) for k in ("name", "family", "devices", "runtime", "summary", "options")
    )
    _EXTRA[key] = EngineInfo(cls.family, cls.name, cls.__module__, cls.__qualname__, attrs)
    _EXTRA_CLASSES[key] = cls
    _LOADED[key] = cls
    return cls


def unregister(family: str, name: str) -> None:
    """Undo :func:`register` (tests)."""
    _EXTRA.pop((family, name), None)
    _EXTRA_CLASSES.pop((family, name), None)
    _LOADED.pop((family, name), None)
