"""Checks on chain configs (YAML) that a hostile or careless file must not get past.

- YAML aliases are allowed, but a document that expands past :data:`MAX_NODES` nodes (a
  "billion laughs" alias bomb) or refers to itself is refused before anything expands it;
- a config that is not UTF-8 text, or larger than :data:`MAX_BYTES`, is refused;
- ``stop_on_failure`` and ``jobs`` take only what they mean (a YAML boolean or one of
  ``true/false/yes/no/on/off/1/0`` as text; a whole number >= 0) - ``"false"`` is false;
- option values may not hold control characters (a newline would break the Makefile
  ``audioprep makefile`` writes, and no option needs one), and a source stage's URLs and
  paths may not start with ``-`` (they would be read as options);
- the config's ``input:`` may not be (inside) a stage directory of the workdir, which the
  chain itself writes and clears.
"""

from __future__ import annotations

import os
from collections.abc import Collection, Iterable
from pathlib import Path
from typing import Any

from audioprep.errors import UsageError

#: Nodes a config may expand to (aliases counted at each use).
MAX_NODES = 100_000
#: Largest config file read.
MAX_BYTES = 1 << 20
_TRUE = {"true", "yes", "on", "1"}
_FALSE = {"false", "no", "off", "0", ""}


def load_yaml(path: Path) -> Any:
    """Parse a config file safely; UsageError naming the problem for anything unusable."""
    import yaml

    try:
        with open(path, "rb") as fh:
            data = fh.read(MAX_BYTES + 1)
    except OSError as exc:
        raise UsageError(f"cannot read the config {path}: {exc.strerror}") from None
    if len(data) > MAX_BYTES:
        raise UsageError(f"{path} is larger than {MAX_BYTES // 1024} KiB; is it a config?")
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise UsageError(
            f"{path} is not UTF-8 text (byte {exc.start}); save it as UTF-8."
        ) from None

    class _Loader(yaml.SafeLoader):
        def get_single_node(self) -> Any:
            node = super().get_single_node()
            if node is not None:
                _check_size(node, path)
            return node

    try:
        return yaml.load(text, Loader=_Loader)  # noqa: S506 - a SafeLoader subclass
    except yaml.YAMLError as exc:
        raise UsageError(f"{path} is not valid YAML: {exc}") from None
    except RecursionError:
        raise UsageError(f"{path} is nested too deeply to be a config") from None


def _check_size(root: Any, path: Path) -> None:
    """Count the nodes ``root`` expands to (each alias use counted whole), without expanding."""
    sizes: dict[int, int] = {}
    active: set[int] = set()

    def size(node: Any) -> int:
        key = id(node)
        if key in sizes:
            return sizes[key]
        if key in active:
            raise UsageError(f"{path}: an alias refers to itself (a recursive structure)")
        active.add(key)
        total = 1
        value = node.value
        if isinstance(value, list):
            for item in value:
                if isinstance(item, tuple):  # a mapping's (key, value) pair
                    total += size(item[0]) + size(item[1])
                else:
                    total += size(item)
                if total > MAX_NODES:
                    raise UsageError(
                        f"{path}: the YAML expands to more than {MAX_NODES} values (an alias "
                        "bomb?); write the options out instead."
                    )
        active.discard(key)
        sizes[key] = total
        return total

    try:
        size(root)
    except RecursionError:
        raise UsageError(f"{path} is nested too deeply to be a config") from None


def as_bool(value: Any, where: str) -> bool:
    """A YAML boolean, or its common spellings as text.

    >>> as_bool("false", "x"), as_bool(True, "x"), as_bool(None, "x")
    (False, True, False)
    """
    if value is None or isinstance(value, bool):
        return bool(value)
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    if isinstance(value, str) and value.strip().lower() in _TRUE | _FALSE:
        return value.strip().lower() in _TRUE
    raise UsageError(f"{where} takes true or false, not {_short(value)}")


def as_jobs(value: Any, where: str) -> int:
    """A whole number of workers >= 0 (0: one per core), also as text.

    >>> as_jobs("2", "x"), as_jobs(None, "x")
    (2, 0)
    """
    if value is None:
        return 0
    if isinstance(value, str) and value.strip().isdigit():
        value = int(value.strip())
    if isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= 4096:
        return value
    raise UsageError(
        f"{where} takes a whole number of workers (0: one per core), not {_short(value)}"
    )


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def check_options(
    options: dict[str, Any], where: str, *, positional: Collection[str] | None
) -> None:
    """Refuse option values with control characters, and positional values that look like
    options (a URL ``--overwrite`` would be read as the flag)."""

    def walk(value: Any, key: str) -> None:
        if isinstance(value, str):
            if any(ord(c) < 32 and c != "\t" or ord(c) == 127 for c in value):
                raise UsageError(
                    f"{where}: the value of {key!r} holds a newline or another control "
                    "character; give one value per list item instead."
                )
            if positional and key in positional and value.startswith("-"):
                raise UsageError(
                    f"{where}: {key} value {value!r} starts with '-' and would be read as an "
                    "option; give options as their own keys."
                )
        elif isinstance(value, list | tuple):
            for v in value:
                walk(v, key)
        elif isinstance(value, dict):
            raise UsageError(
                f"{where}: the value of {key!r} must be a value or a list, not a mapping"
            )

    for key, value in options.items():
        walk(str(key), "option name")
        walk(value, key)


def check_input_dir(input_dir: Path | None, stage_dirs: Iterable[Path]) -> None:
    """Refuse an ``input:`` that is, holds or lies inside a stage directory the chain writes."""
    if input_dir is None:
        return
    from audioprep.manifests.guards import check_output_dir

    for out in stage_dirs:
        try:
            check_output_dir(out, in_dirs=[input_dir], clearing=True, what="stage directory")
        except UsageError:
            raise UsageError(
                f"the config's input {input_dir} is the chain's own stage directory {out} (or "
                "inside or around it), which the chain writes over: move the input out of the "
                "workdir or choose another workdir."
            ) from None
        target, source = _real(out), _real(input_dir)
        if source == target or target in source.parents:
            raise UsageError(
                f"the config's input {input_dir} lies inside the chain's stage directory {out}, "
                "which the chain writes over: move the input out of the workdir."
            )


def _real(path: Path) -> Path:
    try:
        return Path(os.path.abspath(path)).resolve()
    except (OSError, RuntimeError):
        return Path(os.path.abspath(path))
