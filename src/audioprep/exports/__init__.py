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
    split_by: str | None = None,
    split_ratio: str = "0.8,0.1,0.1",
) -> dict[str, Any]:
    """Write ``in_dir`` as ``fmt`` into the folder ``out``; return counts for the terminal
    (``items``, ``seconds``, ``without_text``, ``skipped``; ``exit_code`` 1 when some records
    were skipped).

    Refused before anything is written: an unknown format, OUT that is IN or inside its
    audio, IN inside OUT when OUT would be cleared, a non-empty OUT without ``overwrite``.
    A disk that fills up or a folder that cannot be written gives one sentence (exit 3).
    ``shard_size``: items per shard of a format that writes shards (webdataset).

    ``split_by`` (``speaker`` or ``within-speaker``, hf and lhotse) writes ``OUT/train``,
    ``OUT/dev`` and ``OUT/test``, each an export of its own, by ``split_ratio``.
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
    if split_by is not None:
        return _export_splits(in_dir, out, module, fmt, overwrite, split_by, split_ratio)
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


def _export_splits(
    in_dir: Path,
    out: Path,
    module: ModuleType,
    fmt: str,
    overwrite: bool,
    split_by: str,
    split_ratio: str,
) -> dict[str, Any]:
    """``--split-by``: one export per split in OUT/train, OUT/dev, OUT/test."""
    from audioprep.exports._base import SPLITS, assign_splits, parse_ratios
    from audioprep.manifests.records import iter_checked

    if fmt not in ("hf", "lhotse"):
        raise UsageError("--split-by is for --format hf or lhotse")
    if split_by not in ("speaker", "within-speaker"):
        raise UsageError(f"--split-by must be speaker or within-speaker, not {split_by!r}")
    try:
        ratios = parse_ratios(split_ratio)
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    rows = []
    for _, record, _ in iter_checked(in_dir):
        if record is None:
            continue
        speaker = record.get("speaker")
        if not isinstance(speaker, str) or not speaker:
            raise UsageError(
                f"--split-by {split_by}: record {record['id']!r} has no speaker; "
                "run `audioprep speakers` first"
            )
        rows.append((record["id"], speaker, float(record.get("duration") or 0.0)))
    splits = assign_splits(rows, split_by, ratios)
    check_output_dir(out, in_dirs=[in_dir], clearing=overwrite and out.is_dir(), what="OUT")
    jobs = []
    for name in SPLITS:
        job = ExportJob(in_dir, out / name, fmt)
        job.only = {i for i, s in splits.items() if s == name}
        job.skip_reason = getattr(module, "skip_reason", job.skip_reason)
        job.scan()
        jobs.append(job)
    try:
        _prepare(out, overwrite)
        for job in jobs:
            job.out.mkdir()
            if hasattr(module, "check"):
                module.check(job)
            module.write(job)
            job.write_skipped()
    except OSError as exc:
        raise from_os_error(exc, out) from None
    stats: dict[str, Any] = {"format": fmt, "split_by": split_by, "splits": {}}
    for key in ("items", "seconds", "without_text", "skipped"):
        stats[key] = sum(job.stats[key] for job in jobs)
    for job in jobs:
        stats["splits"][job.out.name] = {
            "items": job.stats["items"],
            "seconds": job.stats["seconds"],
        }
    stats["seconds"] = round(stats["seconds"], 3)
    stats["exit_code"] = 1 if any(job.skipped for job in jobs) else 0
    return stats
