"""One schema per stage: a frozen Params dataclass whose fields carry their CLI/YAML metadata.

A stage declares its parameters once, with :func:`param`; from that declaration come the
command line (``audioprep STAGE``), the YAML chain's validation, the Makefile's command lines
and the CLI reference::

    >>> import dataclasses
    >>> @dataclasses.dataclass(frozen=True)
    ... class P:
    ...     rate: int | None = param(None, help="Output rate in Hz.", flags=("--rate", "-r"), min=1)
    ...     fmt: str = param("wav", help="wav or flac.", choices=("wav", "flac"))
    ...     tags: tuple[str, ...] = param((), help="Tags.", repeatable=True)
    >>> p = from_mapping(P, {"rate": "16000", "fmt": "flac", "tags": "a,b"}, stage="demo")
    >>> p
    P(rate=16000, fmt='flac', tags=('a', 'b'))
    >>> to_argv(p)
    ['--rate', '16000', '--fmt', 'flac', '--tags', 'a', '--tags', 'b']
    >>> from_mapping(P, {"fmt": "mp3"}, stage="demo")
    Traceback (most recent call last):
    ...
    audioprep.core.params.ParamError: audioprep demo: --fmt 'mp3' is not one of: wav, flac

Supported field types: ``str``, ``int``, ``float``, ``bool`` (``--x/--no-x`` unless ``flags``
says otherwise), ``X | None``, ``tuple[X, ...]`` (a repeatable option, or comma-separated) and
``pathlib.Path``. Nothing here imports typer: the CLI (``audioprep.cli.app``) builds its commands
from :func:`fields`.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import os
import pathlib
import re
import sys
import types
import typing
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

from audioprep.errors import UsageError

_META = "audioprep"
_MISSING: Any = dataclasses.MISSING


class ParamError(UsageError):
    """A parameter value or name that the schema refuses (exit status 2)."""


class LazyChoices(Sequence[Any]):
    """Choices computed when used (an engine registry), so that building the CLI computes
    none: ``param(choices=LazyChoices(fn))`` or ``param(choices=fn)``.

    >>> c = LazyChoices(lambda: ("a", "b"))
    >>> "a" in c, list(c), len(c)
    (True, ['a', 'b'], 2)
    """

    def __init__(self, compute: Callable[[], Iterable[Any]]) -> None:
        self._compute = compute

    @property
    def _values(self) -> tuple[Any, ...]:
        # computed on every use, not cached: an engine registered later is a choice too
        return tuple(self._compute())

    def __getitem__(self, index: Any) -> Any:
        return self._values[index]

    def __len__(self) -> int:
        return len(self._values)

    def __contains__(self, value: object) -> bool:
        return value in self._values

    def __iter__(self) -> Any:
        return iter(self._values)

    def __repr__(self) -> str:
        return f"LazyChoices({self._values!r})"


def number_or_auto(text: str) -> float | None:
    """``parse=`` of an option that takes a number or ``auto`` (None).

    >>> number_or_auto("auto"), number_or_auto("0.75")
    (None, 0.75)
    """
    if text == "auto":
        return None
    try:
        return float(text)
    except ValueError:
        raise ValueError("is not a number or auto") from None


def number_or_auto_text(value: float | None) -> str:
    """``render=`` of :func:`number_or_auto`: ``auto`` for None."""
    return "auto" if value is None else repr(float(value))


def param(
    default: Any = _MISSING,
    *,
    help: str,  # noqa: A002 - the natural name, as in click and typer
    flags: Sequence[str] = (),
    choices: Sequence[Any] | Callable[[], Iterable[Any]] | None = None,
    min: float | None = None,  # noqa: A002
    max: float | None = None,  # noqa: A002
    above: float | None = None,
    path: bool = False,
    positional: bool = False,
    repeatable: bool = False,
    metavar: str | None = None,
    parse: Callable[[str], Any] | None = None,
    render: Callable[[Any], str] | None = None,
    role: str | None = None,
) -> Any:
    """A dataclass field with the metadata the CLI, chains and docs need.

    ``min``/``max``: inclusive bounds; ``above``: an exclusive lower bound (``above=0``: more
    than 0). Every number must be finite. ``flags``: option names (default ``--field-name``);
    a bool's ``"--on/--off"`` pair may be given as one string. ``path``: a local path
    (relative ones are taken from a chain config's folder). ``positional``: an argument
    before OUT_DIR (source stages). ``repeatable``: a tuple given as ``--x a --x b``
    (otherwise a tuple is comma-separated). ``parse``/``render``:
    a custom text form (``parse`` raises ValueError with a message; ``render`` is its inverse).
    ``role``: what the field means to the runner and executors (``"device"``,
    ``"model_dir"``), so they read it without knowing its name (see :func:`device_param`).
    """
    meta = {
        "help": help,
        "flags": tuple(flags),
        "choices": (
            None
            if choices is None
            else choices
            if isinstance(choices, LazyChoices)
            else LazyChoices(choices)
            if callable(choices)
            else tuple(choices)
        ),
        "min": min,
        "max": max,
        "above": above,
        "path": path,
        "positional": positional,
        "repeatable": repeatable,
        "metavar": metavar,
        "parse": parse,
        "render": render,
        "role": role,
    }
    return dataclasses.field(default=default, metadata={_META: meta})


@dataclasses.dataclass(frozen=True)
class Field:
    """One parameter, resolved: its type, default and CLI/YAML metadata."""

    name: str
    base: type  # str, int, float, bool or pathlib.Path (the item type of a tuple)
    optional: bool  # None is allowed
    many: bool  # a tuple of ``base``
    default: Any
    help: str
    flags: tuple[str, ...]  # option names, long first; no "/off" half
    off_flag: str | None  # a bool's negative flag, e.g. "--no-x" or "--causal"
    choices: Sequence[Any] | None  # a tuple, or LazyChoices (computed when first used)
    min: float | None
    max: float | None
    above: float | None
    path: bool
    positional: bool
    repeatable: bool
    metavar: str | None
    parse: Callable[[str], Any] | None
    render: Callable[[Any], str] | None
    role: str | None = None

    @property
    def flag(self) -> str:
        """The long option name, e.g. ``--sample-rate``."""
        return next((f for f in self.flags if f.startswith("--")), self.flags[0])

    @property
    def key(self) -> str:
        """The YAML key (the long option without dashes), e.g. ``sample-rate``."""
        return self.flag[2:]

    @property
    def is_flag(self) -> bool:
        return self.base is bool and not self.many and self.parse is None

    @property
    def type_name(self) -> str:
        """A short human name of the type: ``int``, ``float?``, ``str...``."""
        name = "path" if self.base is pathlib.Path else self.base.__name__
        return name + ("..." if self.many else "") + ("?" if self.optional else "")


def _unwrap(annotation: Any) -> tuple[type, bool, bool]:
    """(base type, optional, many) of a field annotation."""
    optional = False
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(annotation) if a is not type(None)]
        optional = len(args) < len(typing.get_args(annotation))
        if len(args) != 1:
            raise TypeError(f"unsupported parameter type {annotation!r}")
        annotation = args[0]
        origin = typing.get_origin(annotation)
    many = False
    if origin in (tuple, list):
        inner = typing.get_args(annotation)
        many, annotation = True, inner[0] if inner else str
    if annotation not in (str, int, float, bool, pathlib.Path):
        raise TypeError(f"unsupported parameter type {annotation!r}")
    return annotation, optional, many


@functools.cache
def fields(params_cls: type) -> tuple[Field, ...]:
    """The resolved fields of a Params dataclass, in declaration order.

    A field declared without :func:`param` still works (help is empty, flag from its name).
    """
    module = sys.modules.get(params_cls.__module__)
    hints = typing.get_type_hints(params_cls, vars(module) if module else None)
    out = []
    for f in dataclasses.fields(params_cls):
        meta = dict(f.metadata.get(_META) or {})
        base, optional, many = _unwrap(hints[f.name])
        default: Any = f.default
        if default is _MISSING and f.default_factory is not _MISSING:
            default = f.default_factory()  # type: ignore[operator]
        flags = tuple(meta.get("flags") or ())
        off = None
        if flags and "/" in flags[0]:
            on, off = flags[0].split("/", 1)
            flags = (on, *flags[1:])
        if not flags:
            flags = (f"--{f.name.replace('_', '-')}",)
        explicit = bool(meta.get("flags"))
        if base is bool and not many and off is None and (not explicit or default is not False):
            off = "--no-" + flags[0].lstrip("-")
        out.append(
            Field(
                name=f.name,
                base=base,
                optional=optional or default is None,
                many=many,
                default=default,
                help=meta.get("help", ""),
                flags=flags,
                off_flag=off,
                choices=meta.get("choices"),
                min=meta.get("min"),
                max=meta.get("max"),
                above=meta.get("above"),
                path=bool(meta.get("path")),
                positional=bool(meta.get("positional")),
                repeatable=bool(meta.get("repeatable")),
                metavar=meta.get("metavar"),
                parse=meta.get("parse"),
                render=meta.get("render"),
                role=meta.get("role"),
            )
        )
    return tuple(out)


#: The devices a model may run on (the shared model options' ``--device``).
DEVICES = ("cpu", "cuda")


def device_param(help: str = "cpu or cuda.") -> Any:  # noqa: A002
    """The shared ``--device`` option of a stage that runs a model (role ``device``): one
    declaration, read by executors through :func:`by_role` (a Ray actor asks for a GPU)."""
    return param("cpu", help=help, choices=DEVICES, role="device")


def model_dir_param(help: str) -> Any:  # noqa: A002
    """The shared ``--model-dir`` option (role ``model_dir``): where model files are found."""
    return param("", help=help, path=True, role="model_dir")


def by_role(params: Any, role: str) -> Any:
    """The value of the field of ``params`` declared with ``role``, or None without one.

    >>> @dataclasses.dataclass(frozen=True)
    ... class P:
    ...     where: str = device_param()
    >>> by_role(P(), "device"), by_role(P(), "model_dir")
    ('cpu', None)
    """
    if not dataclasses.is_dataclass(params) or isinstance(params, type):
        return None
    kind: type = type(params)
    for f in fields(kind):
        if f.role == role:
            return getattr(params, f.name)
    return None


def _where(stage: str | None) -> str:
    return f"audioprep {stage}: " if stage else ""


def _scalar(f: Field, value: Any, stage: str | None) -> Any:
    """One value converted to the field's base type and checked against its bounds."""
    where = f"{_where(stage)}{f.flag}"
    if f.parse is not None and isinstance(value, str):
        try:
            parsed = f.parse(value)
        except ValueError as exc:
            raise ParamError(f"{where} {value!r}: {exc}") from None
        return parsed if parsed is None else check_value(f, parsed, stage)
    try:
        if f.base is bool:
            if isinstance(value, str) and value.lower() in ("true", "yes", "on", "1"):
                value = True
            elif isinstance(value, str) and value.lower() in ("false", "no", "off", "0"):
                value = False
            if not isinstance(value, bool):
                raise ValueError("takes true or false")
        elif f.base is int:
            if isinstance(value, bool) or (isinstance(value, float) and not value.is_integer()):
                raise ValueError("is not an integer")
            value = int(value)
        elif f.base is float:
            if isinstance(value, bool):
                raise ValueError("is not a number")
            value = float(value)
        elif f.base is pathlib.Path:
            value = pathlib.Path(str(value))
        else:
            if isinstance(value, (dict, list)):
                raise ValueError("is not text")
            value = str(value)
    except (TypeError, ValueError) as exc:
        reason = (
            str(exc)
            if str(exc).startswith(("is ", "takes "))
            else "is not a " + ("number" if f.base in (int, float) else f.base.__name__)
        )
        raise ParamError(f"{where} {value!r} {reason}") from None
    return check_value(f, value, stage)


def check_value(f: Field, value: Any, stage: str | None = None) -> Any:
    """``value`` (already of the field's type) checked against the field's choices and
    bounds; a number must be finite (no NaN, no infinity). Returns it; raises ParamError.

    >>> f = fields(_Example)[0]
    >>> check_value(f, 0.5)
    0.5
    >>> check_value(f, float("nan"), "demo")
    Traceback (most recent call last):
    ...
    audioprep.core.params.ParamError: audioprep demo: --level nan is not a finite number
    """
    where = f"{_where(stage)}{f.flag}"
    if isinstance(value, float) and not math.isfinite(value):
        raise ParamError(f"{where} {value!r} is not a finite number")
    if f.choices is not None and value not in f.choices:
        options = ", ".join(str(c) for c in f.choices)
        raise ParamError(f"{where} {value!r} is not one of: {options}")
    if (f.min, f.max, f.above) != (None, None, None) and not isinstance(value, (int, float)):
        raise ParamError(f"{where} {value!r} is not a number")
    if f.min is not None and value < f.min:
        raise ParamError(f"{where} {value!r} is below the minimum {f.min:g}")
    if f.max is not None and value > f.max:
        raise ParamError(f"{where} {value!r} is above the maximum {f.max:g}")
    if f.above is not None and value <= f.above:
        raise ParamError(f"{where} {value!r} must be more than {f.above:g}")
    return value


def validate(params: Any, *, stage: str | None = None) -> None:
    """Check every field of ``params`` against its declaration, however the Params were made
    (command line, YAML or Python): choices, bounds, finite numbers. Raises ParamError.

    >>> validate(_Example(level=2.0), stage="demo")
    Traceback (most recent call last):
    ...
    audioprep.core.params.ParamError: audioprep demo: --level 2.0 is above the maximum 1
    """
    if not dataclasses.is_dataclass(params) or isinstance(params, type):
        return
    kind: type = type(params)
    for f in fields(kind):
        value = getattr(params, f.name)
        if value is None:
            continue
        if f.many and isinstance(value, (tuple, list)):
            for item in value:
                check_value(f, item, stage)
        elif f.base in (int, float) and isinstance(value, bool):
            raise ParamError(f"{_where(stage)}{f.flag} {value!r} is not a number")
        else:
            check_value(f, value, stage)


@dataclasses.dataclass(frozen=True)
class _Example:
    level: float = param(0.5, help="A level.", min=0.0, max=1.0)


def convert(f: Field, value: Any, *, stage: str | None = None) -> Any:
    """A raw value (from YAML or the command line) as the field's type; raise ParamError.

    Tuples take a list, or one comma-separated string.
    """
    if value is None:
        if f.optional:
            return None
        if f.many:
            return ()
        raise ParamError(f"{_where(stage)}{f.flag} needs a value")
    if f.many:
        items: Iterable[Any]
        if isinstance(value, str):
            items = [v.strip() for v in value.split(",") if v.strip()]
        elif isinstance(value, (list, tuple)):
            items = value
        else:
            items = [value]
        return tuple(_scalar(f, v, stage) for v in items)
    if isinstance(value, (list, tuple)) and f.base is not str:
        raise ParamError(f"{_where(stage)}{f.flag} takes one value, not a list")
    if isinstance(value, (list, tuple)):
        value = ",".join(str(v) for v in value)
    return _scalar(f, value, stage)


def by_key(params_cls: type) -> dict[str, Field]:
    """Field by every name a config may use: the field name and its long flags, ``-`` or ``_``."""
    out: dict[str, Field] = {}
    for f in fields(params_cls):
        for name in (f.name, *(x[2:] for x in f.flags if x.startswith("--"))):
            out[name.replace("-", "_")] = f
        if f.off_flag:
            out.setdefault(f.off_flag[2:].replace("-", "_"), f)
    return out


def _is_local_path(value: str) -> bool:
    return not ("://" in value or re.match(r"^[a-z]+search\d*:", value) or os.path.isabs(value))


def from_mapping(
    params_cls: type,
    data: Mapping[str, Any],
    *,
    stage: str | None = None,
    base_dir: str | os.PathLike[str] | None = None,
) -> Any:
    """Params from a config mapping (keys: option names with ``-`` or ``_``, or field names).

    Unknown keys raise ParamError listing the valid ones; values are converted and checked;
    relative paths of ``path=True`` fields are taken from ``base_dir``.
    """
    keys = by_key(params_cls)
    values: dict[str, Any] = {}
    for raw_key, value in data.items():
        key = str(raw_key).replace("-", "_")
        f = keys.get(key)
        if f is None:
            valid = ", ".join(fl.key for fl in fields(params_cls))
            raise ParamError(
                f"{_where(stage)}no option {key.replace('_', '-')!r} (options: {valid})"
            )
        if f.off_flag and key == f.off_flag[2:].replace("-", "_") and key != f.name:
            value = not convert(f, value, stage=stage)
        converted = convert(f, value, stage=stage)
        if f.path and base_dir is not None and converted is not None:
            converted = _rebase(converted, base_dir)
        values[f.name] = converted
    return params_cls(**values)


def _rebase(value: Any, base_dir: str | os.PathLike[str]) -> Any:
    if isinstance(value, tuple):
        return tuple(_rebase(v, base_dir) for v in value)
    text = str(value)
    if not text or not _is_local_path(text):
        return value
    joined = pathlib.Path(base_dir) / text
    return joined if isinstance(value, pathlib.Path) else str(joined)


def from_cli(params_cls: type, values: Mapping[str, Any], *, stage: str | None = None) -> Any:
    """Params from the keyword arguments of a generated command (field name -> parsed value)."""
    out = {}
    for f in fields(params_cls):
        if f.name not in values:
            continue
        value = values[f.name]
        if f.many and not f.repeatable and not f.positional and isinstance(value, str):
            value = convert(f, value, stage=stage)
        elif f.many:
            value = convert(f, list(value or ()), stage=stage)
        elif f.parse is not None and isinstance(value, str):
            value = convert(f, value, stage=stage)
        else:
            value = convert(f, value, stage=stage) if value is not None else None
            if value is None and not f.optional:
                value = f.default
        out[f.name] = value
    return params_cls(**out)


def text(f: Field, value: Any) -> str:
    """One value as the command line writes it."""
    if f.render is not None:
        return f.render(value)
    if isinstance(value, float) and value.is_integer():
        return repr(value)
    return str(value)


def to_argv(params: Any, *, only_changed: bool = True) -> list[str]:
    """The command-line options (and positional arguments, first) that give ``params``.

    With ``only_changed`` (the default) fields equal to their default are left out.
    """
    positional: list[str] = []
    options: list[str] = []
    params_cls: Any = type(params)
    for f in fields(params_cls):
        value = getattr(params, f.name)
        if f.positional:
            positional += [text(f, v) for v in (value or ())] if f.many else [text(f, value)]
            continue
        if only_changed and value == f.default:
            continue
        if f.is_flag and value is not None:
            if value:
                options.append(f.flag)
            elif f.off_flag:
                options.append(f.off_flag)
            continue
        if value is None:
            if f.render is not None:
                options += [f.flag, f.render(None)]
            continue
        if f.many and f.repeatable:
            for v in value:
                options += [f.flag, text(f, v)]
        elif f.many:
            options += [f.flag, ",".join(text(f, v) for v in value)]
        else:
            options += [f.flag, text(f, value)]
    return positional + options


def describe(params_cls: type) -> list[dict[str, Any]]:
    """Each field as plain data (for the CLI reference and the snapshot)."""
    out = []
    for f in fields(params_cls):
        default = f.default
        if isinstance(default, tuple):
            default = list(default)
        out.append(
            {
                "name": f.name,
                "flags": list(f.flags) + ([f.off_flag] if f.off_flag else []),
                "type": f.type_name,
                "default": default if not isinstance(default, pathlib.Path) else str(default),
                "help": f.help,
                "choices": list(f.choices) if f.choices else None,
                "min": f.min,
                "max": f.max,
                "above": f.above,
                "path": f.path,
                "positional": f.positional,
                "repeatable": f.repeatable,
            }
        )
    return out
