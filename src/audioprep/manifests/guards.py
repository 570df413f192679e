"""Guards on where a command may write: one function every directory-writing command calls.

A command that writes a directory (every stage, ``export``, a chain) must never write into,
clear or read back its own input. :func:`check_output_dir` refuses, before anything is
touched:

- OUT that is one of the inputs (``export IN IN``);
- OUT inside an input manifest directory's managed parts (``IN/audio``, ``IN/.tmp``, ...),
  or anywhere inside a folder that is read recursively (ingest's source folders: ingest
  would take its own output as input);
- an input inside OUT when OUT is about to be cleared (``--overwrite``, ``export d/in d``),
  or inside OUT's managed parts, which a run prunes.

Paths are compared resolved (symlinks followed), so a link to the input counts as the input.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable
from pathlib import Path

from audioprep.errors import UsageError
from audioprep.manifests.layout import RUN_DIRS

#: The parts of a manifest directory a run writes, replaces or prunes.
MANAGED_PARTS = RUN_DIRS
_GLOB_CHARS = re.compile(r"[*?\[]")


def _resolved(path: str | os.PathLike[str]) -> Path:
    try:
        return Path(os.path.expanduser(os.fspath(path))).resolve()
    except (OSError, RuntimeError, ValueError):  # a symlink loop: compare it as written
        return Path(os.path.abspath(os.fspath(path)))


def _inside(child: Path, parent: Path) -> bool:
    return child == parent or parent in child.parents


def glob_root(pattern: str) -> Path:
    """The folder a glob pattern starts from (the part before its first wildcard).

    >>> glob_root("/data/clips/**/*.mp3")
    PosixPath('/data/clips')
    >>> glob_root("talk.mp3")
    PosixPath('talk.mp3')
    """
    match = _GLOB_CHARS.search(pattern)
    if not match:
        return Path(pattern)
    head = pattern[: match.start()]
    return Path(head).parent if not head.endswith("/") else Path(head)


def check_output_dir(
    out: str | os.PathLike[str],
    *,
    in_dirs: Iterable[str | os.PathLike[str]] = (),
    trees: Iterable[str | os.PathLike[str]] = (),
    clearing: bool = False,
    what: str = "OUT_DIR",
) -> None:
    """Refuse (UsageError, exit 2) an output directory that would overwrite, clear or read back
    one of the command's inputs.

    ``in_dirs`` are input manifest directories; ``trees`` are files and folders read as a whole
    (ingest's sources); ``clearing`` says OUT's current content is about to be removed.

    >>> check_output_dir("/c/in", in_dirs=["/c/in"])
    Traceback (most recent call last):
    ...
    audioprep.errors.UsageError: OUT_DIR /c/in is its own input: write a new directory instead.
    >>> check_output_dir("/c", in_dirs=["/c/in"], clearing=True)  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    audioprep.errors.UsageError: OUT_DIR /c holds the input /c/in and would be cleared: ...
    """
    target = _resolved(out)
    shown = os.fspath(out)
    for kind, paths in (("dir", in_dirs), ("tree", trees)):
        for raw in paths:
            source = _resolved(raw)
            if target == source:
                raise UsageError(f"{what} {shown} is its own input: write a new directory instead.")
            if kind == "tree" and _inside(target, source):
                raise UsageError(
                    f"{what} {shown} is inside the source {raw}, so the command would read its "
                    "own output: choose an OUT_DIR outside it."
                )
            if kind == "dir" and any(_inside(target, source / p) for p in MANAGED_PARTS):
                raise UsageError(
                    f"{what} {shown} is inside the input's {target.relative_to(source).parts[0]}/"
                    " folder: choose an OUT_DIR outside the input."
                )
            if _inside(source, target) and (
                clearing
                or kind == "tree"
                or any(_inside(source, target / p) for p in MANAGED_PARTS)
            ):
                why = "would be cleared" if clearing else "would be written over"
                raise UsageError(
                    f"{what} {shown} holds the input {raw} and {why}: choose an OUT_DIR "
                    "outside the input."
                )
