"""Export a manifest directory to training formats, one module per format.

Each export is a folder of its own: the audio is hard-linked into it (copied across file
systems) under safe, collision-free names, and the metadata written beside it atomically, so
it can be moved or uploaded alone. Records that cannot be exported (a bad line, an unsafe or
missing audio path) are left out and listed in ``OUT/export-errors.jsonl``; the rest is
exported.

Adding a format is adding one module ``exports/NAME.py`` with ``NAME``, ``HELP`` and
``write(job)`` (see :mod:`audioprep.exports._base`); it is found by name, no table to edit.
"""

from __future__ import annotations

import importlib
import os
import pkgutil
import shutil
from pathlib import Path
from types import ModuleType
from typing import Any

from audioprep.errors import UsageError, from_os_error
from audioprep.exports._base import SKIPPED_FILE, ExportJob, asmr_row
from audioprep.manifests.guards import check_output_dir
from audioprep.manifests.records import manifest_path

__all__ = ["FORMATS", "SKIPPED_FILE", "asmr_row", "export", "format_module"]


def _discover() -> tuple[str, ...]:
    # a module spectrogram_captions.py is the format spectrogram-captions
    names = [
        m.name.replace("_", "-")
        for m in pkgutil.iter_modules(__path__)
        if not m.name.startswith("_")
    ]
    order = ["hf", "nemo", "ljspeech", "csv"]  # the first four in their historical order
    return tuple(sorted(names, key=lambda n: (order.index(n) if n in order else len(order), n)))


#: The format names, one per module in this package.
FORMATS = _discover()


def format_module(fmt: str) -> ModuleType:
    """The module that writes ``fmt`` (UsageError for an unknown format)."""
    if fmt not in FORMATS:
        raise UsageError(f"--format must be one of {', '.join(FORMATS)}, not {fmt!r}")
    return importlib.import_module(f"{__name__}.{fmt.replace('-', '_')}")


def _prepare(out: Path, overwrite: bool) -> None:
    if out.exists() and not out.is_dir():
        raise UsageError(f"{out} exists and is not a folder")
    if out.is_dir() and any(out.iterdir()):
        if not overwrite:
            raise UsageError(f"{out} exists and is not empty; pass --overwrite to replace it")
        shutil.rmtree(out)
    out.mkdir(parents=True, exist_ok=True)


def export(
    in_dir: str | os.PathLike[str],
    out: str | os.PathLike[str],
    *,
    fmt: str,
    overwrite: bool = False,
    caption: str | None = None,
    shard_size: int | None = None,
) -> dict[str, Any]:
    """Write ``in_dir`` as ``fmt`` into the folder ``out``; return counts for the terminal
    (``items``, ``seconds``, ``without_text``, ``skipped``; ``exit_code`` 1 when some records
    were skipped).

    Refused before anything is written: an unknown format, OUT that is IN or inside its
    audio, IN inside OUT when OUT would be cleared, a non-empty OUT without ``overwrite``.
    A disk that fills up or a folder that cannot be written gives one sentence (exit 3).
    ``shard_size``: items per shard of a format that writes shards (webdataset).
    """
    module = format_module(fmt)
    if caption is not None and fmt != "spectrogram-captions":
        raise UsageError("--caption is for --format spectrogram-captions")
    if shard_size is not None:
        if not hasattr(module, "SHARD_SIZE"):
            raise UsageError(f"--shard-size is for a format that writes shards, not {fmt}")
        if isinstance(shard_size, bool) or not isinstance(shard_size, int) or shard_size < 1:
            raise UsageError(
                f"--shard-size takes a whole number of items, 1 or more, not {shard_size!r}"
            )
    in_dir, out = Path(in_dir), Path(out)
    manifest_path(in_dir)
    clearing = overwrite and out.is_dir() and any(out.iterdir())
    check_output_dir(out, in_dirs=[in_dir], clearing=clearing, what="OUT")
    job = ExportJob(in_dir, out, fmt)
    job.caption = caption  # read by spectrogram-captions
    job.shard_size = shard_size  # read by webdataset
    job.skip_reason = getattr(module, "skip_reason", job.skip_reason)
    try:
        job.scan()
        if hasattr(module, "check"):
            module.check(job)
        _prepare(out, overwrite)
        module.write(job)
        job.write_skipped()
    except OSError as exc:  # a full disk, a read-only folder: one sentence, exit 3
        raise from_os_error(exc, out) from None
    stats = job.stats
    stats["seconds"] = round(stats["seconds"], 3)
    stats["exit_code"] = 1 if job.skipped else 0
    return stats
